"""Raw STOMP 1.2 over TCP for the history tests: exact frames, escaped header values, and
SUBSCRIBE with x-replay read up to its RECEIPT.

RawStomp (stompd_harness) reads frames as bytes and leaves header values as sent; this adds
STOMP 1.2 value escaping both ways, since x-replay values (`last:5`) contain a colon.
"""

import re
import time

from stompd_harness import RawStomp, scaled

_UNESCAPES = {"\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\c": ":"}


def escape(value):
    return (str(value).replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
            .replace(":", "\\c"))


def unescape(value):
    def one(m):
        if m.group(0) not in _UNESCAPES:
            raise AssertionError(f"undefined escape {m.group(0)!r} in header value {value!r}")
        return _UNESCAPES[m.group(0)]
    return re.sub(r"\\.", one, value)


def describe(frame):
    command, headers, body = frame
    return f"{command} {headers} {body[:200]!r}"


class BrokerError(AssertionError):
    """An ERROR frame where the test expected something else."""

    def __init__(self, frame):
        super().__init__(f"ERROR from the broker: {describe(frame)}")
        self.frame = frame


class Stomp(RawStomp):
    """One STOMP 1.2 connection: frames come back as (command, headers, body) with header
    values unescaped (not for CONNECTED, as the spec says)."""

    def __init__(self, port, **kwargs):
        super().__init__(port, **kwargs)
        self.receipt_counter = 0

    @classmethod
    def connected(cls, port, login=None, passcode=None, **kwargs):
        c = cls(port, **kwargs)
        headers = [("accept-version", "1.2"), ("host", "localhost"), ("heart-beat", "0,0")]
        if login is not None:
            headers += [("login", login), ("passcode", passcode or "")]
        c.send_frame("CONNECT", headers, escape_values=False)
        command, headers, body = c.frame()
        if command != "CONNECTED":
            c.close()
            raise AssertionError(f"expected CONNECTED, got {describe((command, headers, body))}")
        return c

    def send_frame(self, command, headers=(), body=b"", escape_values=True):
        if escape_values:
            headers = [(escape(k), escape(v)) for k, v in headers]
        super().send_frame(command, headers, body)

    def frame(self, timeout=None):
        command, headers, body = self.read_frame(timeout)
        if command != "CONNECTED":
            headers = {unescape(k): unescape(v) for k, v in headers.items()}
        return command, headers, body

    def next_receipt_id(self, prefix="r"):
        self.receipt_counter += 1
        return f"{prefix}-{self.receipt_counter}"

    def publish(self, destination, body, receipt=None, headers=()):
        h = [("destination", destination), ("content-type", "text/plain")] + list(headers)
        if receipt:
            h.append(("receipt", receipt))
        self.send_frame("SEND", h, body.encode() if isinstance(body, str) else body)

    def publish_confirmed(self, destination, body, headers=()):
        """SEND with a receipt; returns the RECEIPT's headers (x-seq among them)."""
        rid = self.next_receipt_id("send")
        self.publish(destination, body, receipt=rid, headers=headers)
        frame = self.frame()
        if frame[0] == "ERROR":
            raise BrokerError(frame)
        if frame[0] != "RECEIPT" or frame[1].get("receipt-id") != rid:
            raise AssertionError(f"expected RECEIPT {rid}, got {describe(frame)}")
        return frame[1]

    def subscribe_replay(self, destination, sub_id, replay=None, timeout=None, headers=()):
        """SUBSCRIBE (x-replay if given, and `headers`, e.g. x-epoch) with a receipt; returns
        (messages before the RECEIPT, RECEIPT headers). Anything but MESSAGE before the
        RECEIPT fails the test."""
        rid = self.next_receipt_id("sub")
        h = [("id", sub_id), ("destination", destination), ("ack", "auto"), ("receipt", rid)]
        if replay is not None:
            h.append(("x-replay", replay))
        self.send_frame("SUBSCRIBE", h + list(headers))
        messages = []
        while True:
            frame = self.frame(scaled(10) if timeout is None else timeout)
            if frame[0] == "MESSAGE":
                messages.append(frame)
            elif frame[0] == "RECEIPT" and frame[1].get("receipt-id") == rid:
                return messages, frame[1]
            elif frame[0] == "ERROR":
                raise BrokerError(frame)
            else:
                raise AssertionError(f"unexpected frame before the SUBSCRIBE RECEIPT: "
                                     f"{describe(frame)}")

    def disconnect(self):
        """DISCONNECT and wait (bounded) for its RECEIPT, skipping frames still on the way."""
        deadline = time.monotonic() + scaled(5)
        try:
            self.send_frame("DISCONNECT", [("receipt", "bye")])
            while True:
                command, headers, _ = self.frame(max(0.01, deadline - time.monotonic()))
                if command == "RECEIPT" and headers.get("receipt-id") == "bye":
                    break
        except (OSError, ConnectionError, TimeoutError):
            pass
        self.close()


def seq_of(frame):
    return int(frame[1]["x-seq"])


def seqs_of(frames):
    return [seq_of(f) for f in frames]


def bodies_of(frames):
    return [f[2].decode() for f in frames]
