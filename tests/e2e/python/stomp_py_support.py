"""What the stomp.py suites share: a listener that queues frames so tests wait with deadlines.

Run with /usr/bin/python3: that is the interpreter Debian's python3-stomp is installed for.
"""

import queue
import time

try:
    import stomp
except ImportError as e:  # a clear message instead of a bare traceback
    raise ImportError("stomp.py is missing: install Debian's python3-stomp (scripts/install-deps "
                      "test) and run with /usr/bin/python3") from e

from stompd_harness import scaled


class Collector(stomp.ConnectionListener):
    """Queues every frame stomp.py hands its listener, so tests wait with deadlines."""

    def __init__(self):
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()
        self.heartbeats = 0
        self.heartbeat_timeouts = 0
        self.disconnected = False

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame)

    def on_error(self, frame):
        self.errors.put(frame)

    def on_heartbeat(self):
        self.heartbeats += 1

    def on_heartbeat_timeout(self):
        self.heartbeat_timeouts += 1

    def on_disconnected(self):
        self.disconnected = True

    def message(self, timeout=None):
        try:
            return self.messages.get(timeout=scaled(5) if timeout is None else timeout)
        except queue.Empty:
            raise AssertionError("no MESSAGE in time") from None

    def no_message(self, within):
        """Asserts that nothing arrives for `within` seconds (a bounded negative check)."""
        try:
            frame = self.messages.get(timeout=within)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected MESSAGE {frame.headers} {frame.body!r}")

    def receipt(self, receipt_id):
        deadline = time.monotonic() + scaled(5)
        while True:
            try:
                frame = self.receipts.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no RECEIPT {receipt_id} in time") from None
            if frame.headers.get("receipt-id") == receipt_id:
                return frame

    def error(self):
        try:
            return self.errors.get(timeout=scaled(5))
        except queue.Empty:
            raise AssertionError("no ERROR in time") from None

    def wait_disconnected(self):
        deadline = time.monotonic() + scaled(5)
        while not self.disconnected and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.disconnected
