"""History (the journal and x-replay) against the real stompd over TCP: replay racing
concurrent publishers, retention, paging back with x-replay: before:SEQ, x-idempotency-key
(a resend after a lost RECEIPT, across a restart, through the HTTP API too), a graceful
restart, and a corrupt journal at startup.

Run with /usr/bin/python3 (Debian's python3-stomp). Not named test_*.py: CTest runs it as its
own test (e2e_history_py), apart from e2e_stomp_py's discovery, so the two run in parallel and
keep separate time limits.

STOMPD_E2E_SEED=N repeats the random choices of a failed run (the seed is in every failure).
"""

import http.client
import json
import os
import queue
import random
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

try:
    import stomp
except ImportError as e:
    raise ImportError("stomp.py is missing: install Debian's python3-stomp (scripts/install-deps "
                      "test) and run with /usr/bin/python3") from e

from history_support import (BrokerError, Stomp, bodies_of, describe, seq_of, seqs_of)
from stompd_harness import Broker, sanitizer_reports, scaled, unique

SEED = int(os.environ.get("STOMPD_E2E_SEED") or time.time_ns() % 1_000_000)


class BrokerCase(unittest.TestCase):
    """A broker per test; CONFIG goes into its --config file. A broker that does not stop
    with exit code 0 on SIGTERM fails the test."""

    CONFIG = None

    def setUp(self):
        self.broker = Broker.start(config=self.CONFIG)
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            c.close()
        code, graceful = self.broker.stop()
        log = self.broker.log()
        self.broker.cleanup()
        if not graceful or code != 0:
            raise AssertionError(f"stompd exit code {code}, graceful={graceful}\n{log}")

    def connect(self):
        c = Stomp.connected(self.broker.tcp_port)
        self.conns.append(c)
        return c

    def check_replay(self, replayed, receipt, first, last, head, complete, what=""):
        ctx = f"{what} RECEIPT {receipt}; replayed {seqs_of(replayed)}"
        self.assertEqual(seqs_of(replayed), list(range(first, last + 1)), ctx)
        for m in replayed:
            self.assertEqual(m[1].get("x-replayed"), "true", f"replayed frame flagged: {describe(m)}")
            self.assertEqual(m[1].get("message-id"), m[1].get("x-seq"), describe(m))
        self.assertEqual(receipt.get("x-replay-count"), str(len(replayed)), ctx)
        self.assertEqual(receipt.get("x-head-seq"), str(head), ctx)
        self.assertEqual(receipt.get("x-replay-complete"), "true" if complete else "false", ctx)


class Publisher(threading.Thread):
    """Publishes `count` numbered messages per round, pipelined (up to `window` unconfirmed
    SENDs), each with a receipt; records the x-seq every RECEIPT reports."""

    def __init__(self, port, destination, name, count, window=10):
        super().__init__(daemon=True, name=name)
        self.conn = Stomp.connected(port)
        self.destination = destination
        self.count = count
        self.window = window
        self.rounds = queue.Queue()
        self.sent = 0                  # in the current round, for the subscriber to wait on
        self.progress = threading.Condition()
        self.done = queue.Queue()
        self.seq_of_body = {}          # body -> x-seq from its RECEIPT
        self.error = None

    def body(self, rnd, i):
        return f"{self.name}-r{rnd}-{i}"

    def run(self):
        try:
            while True:
                rnd = self.rounds.get()
                if rnd is None:
                    return
                self.publish_round(rnd)
                self.done.put(rnd)
        except Exception as e:  # reported by the test, with the broker log
            self.error = e
            self.done.put(None)

    def start_round(self, rnd):
        """Called while the publisher is idle (its previous round is done)."""
        with self.progress:
            self.sent = 0
        self.rounds.put(rnd)

    def publish_round(self, rnd):
        pending = {}
        for i in range(self.count):
            while len(pending) >= self.window:
                self.take_receipt(pending)
            body = self.body(rnd, i)
            rid = f"{rnd}-{i}"
            pending[rid] = body
            self.conn.publish(self.destination, body, receipt=rid)
            with self.progress:
                self.sent = i + 1
                self.progress.notify_all()
        while pending:
            self.take_receipt(pending)

    def take_receipt(self, pending):
        frame = self.conn.frame(scaled(10))
        if frame[0] != "RECEIPT":
            raise AssertionError(f"publisher {self.name}: {describe(frame)}")
        body = pending.pop(frame[1]["receipt-id"])
        if "x-seq" not in frame[1]:
            raise AssertionError(f"SEND RECEIPT without x-seq: {describe(frame)}")
        self.seq_of_body[body] = int(frame[1]["x-seq"])

    def wait_sent(self, n, timeout):
        with self.progress:
            if not self.progress.wait_for(lambda: self.sent >= n, timeout):
                raise AssertionError(f"publisher {self.name} sent only {self.sent} of {n} in time")


class ReplayRaceTest(BrokerCase):
    """No gap and no duplicate between the last replayed message and the first live one while
    two publishers keep publishing to the same destination."""

    ROUNDS = 30
    PER_ROUND = 100  # per publisher; 30 x 100 x 2 = 6000 stay below the 10000-message cap

    def test_replay_then_live_is_consecutive_while_others_publish(self):
        rng = random.Random(SEED)
        dest = unique("/topic/race")
        pubs = [Publisher(self.broker.tcp_port, dest, f"p{k}", self.PER_ROUND) for k in range(2)]
        for p in pubs:
            self.conns.append(p.conn)
            p.start()
        started = time.monotonic()
        seen_body = {}  # x-seq -> body, across rounds: a seq never changes its message
        try:
            for rnd in range(self.ROUNDS):
                self.race_round(rng, rnd, dest, pubs, seen_body)
        finally:
            for p in pubs:
                p.rounds.put(None)
            for p in pubs:
                p.join(scaled(10))
        took = time.monotonic() - started
        self.assertLess(took, scaled(50), f"{self.ROUNDS} rounds took {took:.1f} s")

        # Every confirmed SEND's x-seq names the same message the subscribers saw.
        total = self.ROUNDS * self.PER_ROUND * len(pubs)
        self.assertEqual(sorted(seen_body), list(range(1, total + 1)))
        for p in pubs:
            self.assertEqual(len(p.seq_of_body), self.ROUNDS * self.PER_ROUND)
            for body, seq in p.seq_of_body.items():
                self.assertEqual(seen_body[seq], body, f"seed {SEED}: RECEIPT x-seq {seq} of {body}")
            # One publisher's messages keep its order.
            order = sorted(p.seq_of_body.items(), key=lambda kv: kv[1])
            self.assertEqual([b for b, _ in order],
                             [p.body(r, i) for r in range(self.ROUNDS) for i in range(self.PER_ROUND)])

    def race_round(self, rng, rnd, dest, pubs, seen_body):
        total_before = rnd * self.PER_ROUND * len(pubs)
        total_after = total_before + self.PER_ROUND * len(pubs)
        mode = rnd % 3
        if mode == 0:
            replay = "after:0"
        elif mode == 1:
            n = rng.randint(1, 400)
            replay = f"last:{n}"
        else:
            s = rng.randint(0, total_before)
            replay = f"after:{s}"
        ctx = f"seed {SEED}, round {rnd}, x-replay {replay}"

        sub = Stomp.connected(self.broker.tcp_port)
        try:
            for p in pubs:
                p.start_round(rnd)
            # SUBSCRIBE somewhere in the middle of the burst: after k messages of publisher 0.
            pubs[0].wait_sent(rng.randint(0, self.PER_ROUND - 1), scaled(10))
            try:
                replayed, receipt = sub.subscribe_replay(dest, f"s{rnd}", replay)
            except BrokerError as e:
                self.fail(f"{ctx}: {e}\n{self.broker.log()}")
            head = int(receipt["x-head-seq"])
            count = int(receipt["x-replay-count"])
            self.assertGreaterEqual(head, total_before, ctx)
            self.assertLessEqual(head, total_after, ctx)
            if mode == 0:
                first = 1
            elif mode == 1:
                first = max(1, head - n + 1)
            else:
                first = s + 1
            self.check_replay(replayed, receipt, first, head, head, True, ctx)
            self.assertEqual(count, head - first + 1, ctx)

            # Live from head+1 until the round's last x-seq: this round publishes exactly
            # total_after messages in all, whoever's message ends up last. (Waiting for each
            # publisher's final body instead hangs when a publisher finished before the
            # SUBSCRIBE and last:N starts after its final message.)
            live = []
            while head + len(live) < total_after:
                try:
                    frame = sub.frame(scaled(10))
                except TimeoutError:
                    got = seqs_of(replayed) + seqs_of(live)
                    self.fail(f"{ctx}: no MESSAGE for {scaled(10)} s, still waiting for x-seq up to "
                              f"{total_after}; "
                              f"RECEIPT {receipt}; got {len(got)} x-seq from {first}: "
                              f"missing {sorted(set(range(first, max(got + [first]) + 1)) - set(got))}, "
                              f"last {got[-5:]}; publishers sent "
                              f"{[(p.name, p.sent, len(p.seq_of_body)) for p in pubs]}\n"
                              f"{self.broker.log()}")
                self.assertEqual(frame[0], "MESSAGE", f"{ctx}: {describe(frame)}")
                self.assertNotIn("x-replayed", frame[1], f"{ctx}: live frame flagged: {describe(frame)}")
                live.append(frame)
            got = seqs_of(replayed) + seqs_of(live)
            if got != list(range(first, total_after + 1)):
                dups = sorted({q for q in got if got.count(q) > 1})
                gaps = sorted(set(range(first, total_after + 1)) - set(got))
                boundary = "\n".join(["  " + describe(f) for f in replayed[-3:]] + ["  -- RECEIPT --"]
                                     + ["  " + describe(f) for f in live[:12]])
                self.fail(f"{ctx}: x-seq not consecutive from {first} to {total_after}: "
                          f"duplicates {dups}, missing {gaps}; RECEIPT {receipt}\n{boundary}")
            for f in replayed + live:
                seq = seq_of(f)
                body = f[2].decode()
                self.assertEqual(seen_body.setdefault(seq, body), body, f"{ctx}: x-seq {seq}")
                self.assertEqual(f[1].get("message-id"), str(seq), describe(f))
        finally:
            if rnd % 2:
                sub.disconnect()
            else:
                sub.close()  # no DISCONNECT: the broker must drop the subscription by itself
        for p in pubs:
            if p.done.get(timeout=scaled(10)) is None:
                self.fail(f"{ctx}: publisher {p.name}: {p.error}\n{self.broker.log()}")


class RetentionTest(BrokerCase):
    CONFIG = {"journal": {
        "retention_interval_ms": 100,
        "destinations": [
            {"pattern": "/topic/ret.count.*", "journaled": True, "max_messages": 5, "max_age_ms": 0},
            {"pattern": "/topic/ret.age.*", "journaled": True, "max_messages": 0, "max_age_ms": 300},
        ],
    }}

    def replay(self, conn, dest, replay):
        sub_id = f"s{conn.receipt_counter}"
        replayed, receipt = conn.subscribe_replay(dest, sub_id, replay)
        conn.send_frame("UNSUBSCRIBE", [("id", sub_id), ("receipt", "u")])
        frame = conn.frame()
        self.assertEqual((frame[0], frame[1].get("receipt-id")), ("RECEIPT", "u"), describe(frame))
        return replayed, receipt

    def replay_until(self, conn, dest, replay, count, what):
        """Retention runs every retention_interval_ms: replays until it shows `count`."""
        deadline = time.monotonic() + scaled(5)
        while True:
            replayed, receipt = self.replay(conn, dest, replay)
            if len(replayed) == count:
                return replayed, receipt
            if time.monotonic() > deadline:
                self.fail(f"{what}: still {len(replayed)} messages stored, RECEIPT {receipt}\n"
                          f"{self.broker.log()}")
            time.sleep(0.02)  # polling a timer-driven effect

    def test_max_messages_keeps_the_newest_and_marks_replays_that_miss_some_incomplete(self):
        dest = unique("/topic/ret.count")
        conn = self.connect()
        for i in range(1, 11):
            self.assertEqual(conn.publish_confirmed(dest, f"m{i}")["x-seq"], str(i))
        replayed, receipt = self.replay_until(conn, dest, "last:10", 5, "max_messages 5")
        self.check_replay(replayed, receipt, 6, 10, 10, False, "last:10")
        self.assertEqual(bodies_of(replayed), [f"m{i}" for i in range(6, 11)])
        cases = [
            ("after:0", 6, False),   # 1..5 are gone
            ("after:4", 6, False),   # 5 is gone
            ("after:5", 6, True),    # everything asked for is there
            ("after:7", 8, True),
            ("last:5", 6, True),
            ("last:6", 6, False),    # 5 is gone
            ("since:0", 6, False),   # everything since 1970: 1..5 are gone
        ]
        for replay, first, complete in cases:
            with self.subTest(replay=replay):
                replayed, receipt = self.replay(conn, dest, replay)
                self.check_replay(replayed, receipt, first, 10, 10, complete, replay)
        # The sequence goes on; retention keeps trimming.
        self.assertEqual(conn.publish_confirmed(dest, "m11")["x-seq"], "11")
        replayed, receipt = self.replay_until(conn, dest, "after:0", 5, "after one more")
        self.check_replay(replayed, receipt, 7, 11, 11, False, "after:0")

    def test_max_age_removes_old_messages(self):
        dest = unique("/topic/ret.age")
        conn = self.connect()
        for i in range(1, 3):
            conn.publish_confirmed(dest, f"m{i}")
        before_last = time.monotonic()
        conn.publish_confirmed(dest, "m3")
        replayed, receipt = self.replay(conn, dest, "last:10")
        if time.monotonic() - before_last < 0.2:  # only meaningful well inside max_age_ms
            self.check_replay(replayed, receipt, 1, 3, 3, True, "right after publishing")
        replayed, receipt = self.replay_until(conn, dest, "last:10", 0, "max_age_ms 300")
        gone_after = time.monotonic() - before_last
        self.check_replay(replayed, receipt, 1, 0, 3, False, "after max_age_ms")
        self.assertGreaterEqual(gone_after, 0.3, "removed before max_age_ms passed")
        # The sequence goes on after everything stored expired.
        self.assertEqual(conn.publish_confirmed(dest, "m4")["x-seq"], "4")


class ReplayCapTest(BrokerCase):
    """A replay larger than the caps serves the newest messages up to them, incomplete, and
    still joins the live stream without a gap."""

    CONFIG = {"journal": {"replay_max_messages": 5, "replay_max_bytes": 4096}}

    def test_caps_the_number_of_messages_keeping_the_newest(self):
        pub = self.connect()
        for replay, complete in (("last:10", False), ("after:0", False), ("since:0", False),
                                 ("last:5", True), ("after:5", True)):
            with self.subTest(replay=replay):
                dest = unique("/topic/cap.count")
                for i in range(1, 11):
                    pub.publish_confirmed(dest, f"m{i}")
                sub = self.connect()
                replayed, receipt = sub.subscribe_replay(dest, "s", replay)
                self.check_replay(replayed, receipt, 6, 10, 10, complete, replay)
                pub.publish_confirmed(dest, "live")
                live = sub.frame()
                self.assertEqual((live[0], live[1].get("x-seq")), ("MESSAGE", "11"), describe(live))
                self.assertNotIn("x-replayed", live[1])

    def test_caps_the_bytes_keeping_the_newest(self):
        dest = unique("/topic/cap.bytes")
        conn = self.connect()
        for i in range(1, 5):  # 4 x 1500 bytes: more than 4096
            conn.publish_confirmed(dest, f"{i:04d}" + "x" * 1496)
        replayed, receipt = conn.subscribe_replay(dest, "s", "after:0")
        n = len(replayed)
        self.assertTrue(1 <= n <= 2, f"{n} messages of 1500 bytes replayed under a 4096-byte cap; "
                                     f"RECEIPT {receipt}")
        self.check_replay(replayed, receipt, 5 - n, 4, 4, False, "after:0 over the byte cap")


def load_older(conn, destination, before, limit=None, sub_id="older", epoch=None):
    """SUBSCRIBE with x-replay: before:<before> (and x-replay-limit): the MESSAGEs before its
    RECEIPT, and the RECEIPT's headers."""
    headers = [("x-epoch", epoch)] if epoch else []
    if limit is not None:
        headers.append(("x-replay-limit", str(limit)))
    return conn.subscribe_replay(destination, sub_id, f"before:{before}", headers=headers)


class OlderHistoryTest(BrokerCase):
    """x-replay: before:SEQ, "load older messages": the newest N before SEQ, oldest first,
    whether older ones are stored, and no live messages after (the subscription ends)."""

    CONFIG = {"journal": {"replay_max_messages": 50}}

    def test_pages_back_to_the_first_message_and_never_subscribes(self):
        dest = unique("/topic/older")
        pub = self.connect()
        for i in range(1, 121):
            pub.publish(dest, f"m{i}", receipt=f"s{i}")
        for i in range(1, 121):
            self.assertEqual(pub.frame()[0], "RECEIPT")
        reader = self.connect()
        pages, before = [], 121
        while True:
            got, receipt = load_older(reader, dest, before, limit=30)
            pages.append(seqs_of(got))
            for m in got:
                self.assertEqual(m[1].get("x-replayed"), "true", describe(m))
                self.assertEqual(m[1]["subscription"], "older", describe(m))
            self.assertEqual(receipt["x-replay-count"], str(len(got)), receipt)
            self.assertEqual(receipt["x-head-seq"], "120", receipt)
            self.assertEqual(receipt["x-replay-complete"], "true", receipt)
            if receipt["x-replay-older"] == "false":
                break
            before = seq_of(got[0])
        self.assertEqual(pages, [list(range(k - 29, k + 1)) for k in (120, 90, 60, 30)])
        # The subscription ended with its RECEIPT: its id is free, and nothing live comes.
        pub.publish_confirmed(dest, "live")
        got, receipt = load_older(reader, dest, 2)
        self.assertEqual((seqs_of(got), receipt["x-replay-older"]), ([1], "false"))
        with self.assertRaises(TimeoutError):
            frame = reader.frame(0.5)
            self.fail(f"nothing live after a before: page, got {describe(frame)}")
        # No limit: the replay cap.
        got, receipt = load_older(reader, dest, 121)
        self.assertEqual(seqs_of(got), list(range(71, 121)))
        self.assertEqual(receipt["x-replay-older"], "true")

    def test_malformed_or_receiptless_requests_get_an_error(self):
        dest = unique("/topic/older")
        for headers, words in (
                ([("x-replay", "before:0"), ("receipt", "r")], "SEQ of 1 or more"),
                ([("x-replay", "before:5")], "needs a receipt"),
                ([("x-replay", "before:5"), ("x-replay-limit", "0"), ("receipt", "r")],
                 "x-replay-limit must be a count"),
                ([("x-replay", "last:5"), ("x-replay-limit", "3"), ("receipt", "r")],
                 "before:SEQ only")):
            conn = self.connect()
            conn.send_frame("SUBSCRIBE", [("id", "1"), ("destination", dest)] + headers)
            frame = conn.frame(scaled(5))
            self.assertEqual((frame[0], frame[1].get("message")), ("ERROR", "invalid x-replay"),
                             describe(frame))
            self.assertIn(words, frame[2].decode(), describe(frame))


def admin_publish(broker, destination, body, headers):
    """POST /api/publish on the broker's admin port: (status, JSON answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", broker.admin_port, timeout=scaled(5))
    try:
        conn.request("POST", "/api/publish",
                     body=json.dumps({"destination": destination, "body": body,
                                      "headers": headers}).encode(),
                     headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read() or b"null")
    finally:
        conn.close()


class IdempotencyTest(unittest.TestCase):
    """x-idempotency-key: a backend that resends after a lost RECEIPT (a dropped connection, a
    restart) gets the first SEND's RECEIPT, and the room has the message once."""

    def setUp(self):
        self.brokers = []
        self.addCleanup(self.stop_brokers)

    def stop_brokers(self):
        for b in self.brokers:
            code, graceful = b.stop()
            self.assertEqual((code, graceful), (0, True), b.log())
        for b in self.brokers:
            b.cleanup()

    def start(self, data_dir=None):
        b = Broker.start(data_dir=data_dir)
        self.brokers.append(b)
        return b

    def send(self, conn, dest, body, key):
        return conn.publish_confirmed(dest, body, headers=[("x-idempotency-key", key)])

    def test_a_retry_gets_the_first_receipt_and_is_stored_and_delivered_once(self):
        broker = self.start()
        dest = unique("/topic/idem")
        sub = Stomp.connected(broker.tcp_port)
        self.addCleanup(sub.close)
        sub.subscribe_replay(dest, "s")
        pub = Stomp.connected(broker.tcp_port)
        first = self.send(pub, dest, "order 17 shipped", "order-17")
        self.assertNotIn("x-duplicate", first)
        pub.close()  # the connection drops; the backend reconnects and resends
        pub = Stomp.connected(broker.tcp_port)
        self.addCleanup(pub.close)
        again = self.send(pub, dest, "order 17 shipped", "order-17")
        self.assertEqual((again["x-seq"], again["x-epoch"], again.get("x-duplicate")),
                         (first["x-seq"], first["x-epoch"], "true"))
        other = self.send(pub, dest, "order 18 shipped", "order-18")
        self.assertEqual(int(other["x-seq"]), int(first["x-seq"]) + 1)
        got = [sub.frame(scaled(5)) for _ in range(2)]
        self.assertEqual([m[2] for m in got], [b"order 17 shipped", b"order 18 shipped"])
        with self.assertRaises(TimeoutError):
            frame = sub.frame(0.3)
            self.fail(f"the retry was delivered: {describe(frame)}")
        # The HTTP publish API takes the same header.
        status, answer = admin_publish(broker, dest, "order 17 shipped",
                                       {"x-idempotency-key": "order-17"})
        self.assertEqual((status, answer.get("x-seq"), answer.get("x-duplicate")),
                         (200, int(first["x-seq"]), True), answer)
        status, answer = admin_publish(broker, dest, "x", {"x-idempotency-key": "k" * 257})
        self.assertEqual(status, 400, answer)

    def test_the_key_is_remembered_across_a_restart(self):
        first_broker = self.start()
        dest = unique("/topic/idem.restart")
        pub = Stomp.connected(first_broker.tcp_port)
        first = self.send(pub, dest, "hello", "k-1")
        pub.close()
        first_broker.stop()
        broker = self.start(data_dir=first_broker.data_dir)
        pub = Stomp.connected(broker.tcp_port)
        self.addCleanup(pub.close)
        again = self.send(pub, dest, "hello", "k-1")
        self.assertEqual((again["x-seq"], again.get("x-duplicate")), (first["x-seq"], "true"))
        history, _ = pub.subscribe_replay(dest, "h", "after:0")
        self.assertEqual(bodies_of(history), ["hello"])

    def test_a_key_too_long_is_an_error(self):
        broker = self.start()
        conn = Stomp.connected(broker.tcp_port)
        self.addCleanup(conn.close)
        with self.assertRaises(BrokerError) as e:
            self.send(conn, unique("/topic/idem"), "x", "k" * 257)
        self.assertIn("invalid x-idempotency-key", describe(e.exception.frame))


class Events(stomp.ConnectionListener):
    """Every frame stomp.py hands over, in arrival order, so RECEIPT position can be checked."""

    def __init__(self):
        self.frames = queue.Queue()

    def on_message(self, frame):
        self.frames.put(("MESSAGE", frame))

    def on_receipt(self, frame):
        self.frames.put(("RECEIPT", frame))

    def on_error(self, frame):
        self.frames.put(("ERROR", frame))

    def next(self):
        try:
            return self.frames.get(timeout=scaled(5))
        except queue.Empty:
            raise AssertionError("no frame from the broker in time") from None

    def until_receipt(self, receipt_id):
        """The MESSAGEs before the RECEIPT receipt_id, and that RECEIPT."""
        messages = []
        while True:
            kind, frame = self.next()
            if kind == "MESSAGE":
                messages.append(frame)
            elif kind == "RECEIPT" and frame.headers.get("receipt-id") == receipt_id:
                return messages, frame
            elif kind == "ERROR":
                raise AssertionError(f"ERROR {frame.headers} {frame.body!r}")


class RestartTest(unittest.TestCase):
    """stomp.py across a graceful restart on the same --data directory."""

    def setUp(self):
        self.brokers = []
        self.conns = []

    def tearDown(self):
        for conn in self.conns:
            try:
                if conn.is_connected():
                    conn.disconnect()
            except Exception:
                pass
        for b in self.brokers:
            b.stop()
        if self.brokers:
            self.brokers[0].cleanup()

    def start(self, data_dir=None):
        b = Broker.start(data_dir=data_dir)
        self.brokers.append(b)
        return b

    def connect(self, broker):
        conn = stomp.Connection12([("127.0.0.1", broker.tcp_port)], heartbeats=(0, 0),
                                  timeout=scaled(5))
        events = Events()
        conn.set_listener("events", events)
        conn.connect(wait=True)
        self.conns.append(conn)
        return conn, events

    def send(self, conn, events, dest, body):
        rid = uuid.uuid4().hex
        conn.send(dest, body, headers={"receipt": rid})
        messages, receipt = events.until_receipt(rid)
        self.assertEqual(messages, [])
        return receipt.headers

    def test_keeps_history_and_sequence_across_a_graceful_restart(self):
        dest = unique("/topic/restart")
        first = self.start()
        conn, events = self.connect(first)
        self.assertEqual([self.send(conn, events, dest, f"m{i}").get("x-seq") for i in (1, 2, 3)],
                         ["1", "2", "3"])
        conn.disconnect()
        code, graceful = first.stop()
        self.assertEqual((code, graceful), (0, True), first.log())

        second = self.start(data_dir=first.data_dir)
        conn, events = self.connect(second)
        self.assertEqual(self.send(conn, events, dest, "m4").get("x-seq"), "4",
                         f"the sequence continues after a restart\n{second.log()}")
        rid = uuid.uuid4().hex
        conn.subscribe(dest, id="s", ack="auto", headers={"x-replay": "last:10", "receipt": rid})
        replayed, receipt = events.until_receipt(rid)
        self.assertEqual([m.headers.get("x-seq") for m in replayed], ["1", "2", "3", "4"])
        self.assertEqual([m.body for m in replayed], ["m1", "m2", "m3", "m4"])
        self.assertTrue(all(m.headers.get("x-replayed") == "true" for m in replayed))
        self.assertEqual((receipt.headers.get("x-replay-count"), receipt.headers.get("x-head-seq"),
                          receipt.headers.get("x-replay-complete")), ("4", "4", "true"),
                         receipt.headers)
        conn.send(dest, "m5")
        kind, live = events.next()
        self.assertEqual((kind, live.headers.get("x-seq"), live.body), ("MESSAGE", "5", "m5"))
        self.assertNotIn("x-replayed", live.headers)


class CorruptJournalTest(unittest.TestCase):
    """A journal stompd cannot read stops startup, names the file and is left as it was."""

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="stompd-e2e-corrupt-")
        self.data = os.path.join(self.workdir, "data")
        os.makedirs(self.data)
        self.db = os.path.join(self.data, "stompd.db")

    def tearDown(self):
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run_stompd(self):
        args = [Broker.binary(), "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--admin", "off",
                "--data", self.data, "--log-level", "info"]
        started = time.monotonic()
        try:
            proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, cwd=self.workdir, timeout=scaled(10))
        except subprocess.TimeoutExpired as e:
            stderr = (e.stderr or b"").decode("utf-8", "replace")
            self.fail(f"stompd still running {scaled(10)} s after starting on a corrupt "
                      f"journal\n{stderr}")
        return proc.returncode, proc.stderr.decode("utf-8", "replace"), time.monotonic() - started

    def check_refused(self, original):
        code, stderr, took = self.run_stompd()
        self.assertGreater(code, 0, f"exit code {code} (negative: killed by a signal)\n{stderr}")
        self.assertLess(took, scaled(5), f"took {took:.1f} s to give up\n{stderr}")
        self.assertIn("stompd.db", stderr, "the message names the journal file")
        self.assertNotIn("listening", stderr, "no listener opened on a corrupt journal")
        self.assertEqual(sanitizer_reports(stderr), [], stderr)
        with open(self.db, "rb") as f:
            self.assertTrue(f.read() == original, "the corrupt journal was modified")

    def test_refuses_a_file_that_is_not_a_journal(self):
        rng = random.Random(SEED)
        garbage = b"this is not a journal\n" * 200 + bytes(rng.randrange(256) for _ in range(8192))
        with open(self.db, "wb") as f:
            f.write(garbage)
        self.check_refused(garbage)

    def test_refuses_a_journal_with_corrupt_pages(self):
        # A real journal first, with enough messages to span many pages.
        broker = Broker.start(data_dir=self.data)
        try:
            conn = Stomp.connected(broker.tcp_port)
            for i in range(40):
                conn.publish_confirmed("/topic/corrupt", f"{i:04d}" + "x" * 1000)
            conn.disconnect()
        finally:
            code, graceful = broker.stop()
        self.assertEqual((code, graceful), (0, True), broker.log())
        for leftover in (self.db + "-wal", self.db + "-shm"):
            if os.path.exists(leftover):  # a clean stop checkpoints; keep only the main file
                os.remove(leftover)
        with open(self.db, "rb") as f:
            data = bytearray(f.read())
        self.assertEqual(bytes(data[:16]), b"SQLite format 3\0")
        page_size = int.from_bytes(data[16:18], "big") or 65536
        self.assertGreater(len(data), 3 * page_size, "the journal spans several pages")
        # Page 1 (header and schema) stays; every other page becomes garbage.
        rng = random.Random(SEED)
        for i in range(page_size, len(data)):
            data[i] = rng.randrange(256)
        with open(self.db, "wb") as f:
            f.write(data)
        self.check_refused(bytes(data))


if __name__ == "__main__":
    unittest.main()
