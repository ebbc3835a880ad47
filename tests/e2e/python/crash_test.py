"""kill -9 while publishing: after a restart on the same --data directory every confirmed
(receipted) message is there exactly once, in publish order, with x-seq consecutive from 1,
and the sequence continues.

Layout: GROUPS fresh data directories; in each, KILLS_PER_GROUP rounds of publish, kill -9 at
a random moment, restart on the same directory, verify. Continuing a directory across kills
checks recovery of a journal that was itself recovered; fresh directories keep a full
after:0 replay (at most KILLS_PER_GROUP x (MAX_PER_ROUND + 1) messages) below the replay cap,
which the config raises so that the publisher is still busy when the kill comes.

DurableQueueCrashTest: kill -9 while a /queue/ is produced to and consumed: every receipted
message is delivered at least once after the restart, acknowledged ones never again.

ShutdownTest: SIGTERM while passcode checks and journal appends are pending exits cleanly.

Run with /usr/bin/python3. Not named test_*.py: CTest runs it as its own test (e2e_crash_py).
STOMPD_E2E_SEED=N repeats the random choices of a failed run (the seed is in every failure).
"""

import os
import random
import socket
import sys
import threading
import time
import unittest

from history_support import Stomp, bodies_of, describe, seqs_of
from stompd_harness import Broker, pbkdf2_hash, sanitizer_reports, scaled

SEED = int(os.environ.get("STOMPD_E2E_SEED") or time.time_ns() % 1_000_000)
DEST = "/topic/crash.log"


class Publisher(threading.Thread):
    """Publishes numbered messages with receipts, up to `window` unconfirmed, until `limit`
    or until the broker dies. `sent` is the publish order; `confirmed` body -> RECEIPT x-seq."""

    def __init__(self, port, prefix, window, limit, destination=DEST):
        super().__init__(daemon=True)
        self.destination = destination
        self.conn = Stomp.connected(port)  # before the kill timer starts
        self.prefix = prefix
        self.window = window
        self.limit = limit
        self.sent = []
        self.confirmed = {}
        self.confirmed_order = []
        self.ended_by = None   # the connection error the kill caused
        self.error = None      # anything else: a test failure

    def run(self):
        pending = {}
        try:
            for i in range(self.limit):
                while len(pending) >= self.window:
                    self.take_receipt(pending)
                body = f"{self.prefix}-{i}"
                pending[str(i)] = body
                self.sent.append(body)
                self.conn.publish(self.destination, body, receipt=str(i))
            while pending:
                self.take_receipt(pending)
        except (OSError, ConnectionError) as e:  # the kill closed the connection
            self.ended_by = e
        except Exception as e:
            self.error = e
        finally:
            self.conn.close()

    def take_receipt(self, pending):
        frame = self.conn.frame(scaled(10))
        if frame[0] != "RECEIPT" or frame[1].get("receipt-id") not in pending:
            raise AssertionError(f"publisher: unexpected {describe(frame)}")
        body = pending.pop(frame[1]["receipt-id"])
        self.confirmed[body] = int(frame[1].get("x-seq", 0))  # a queue's has none
        self.confirmed_order.append(body)


class CrashTest(unittest.TestCase):
    GROUPS = 5
    KILLS_PER_GROUP = 4
    WINDOW = 50
    MAX_PER_ROUND = 8000
    # Up to KILLS_PER_GROUP x MAX_PER_ROUND messages in one topic, all verified: no default
    # retention (journal.default_max_messages, 10000) may trim them.
    JOURNAL = {"replay_max_messages": 50000, "replay_max_bytes": 64 * 1024 * 1024,
               "default_max_messages": 0}

    def setUp(self):
        self.broker = None
        self.stats = []  # (sent, confirmed) per kill

    def tearDown(self):
        if self.broker:
            self.broker.kill()
            self.broker.cleanup()

    def test_keeps_every_confirmed_message_across_kill_9(self):
        rng = random.Random(SEED)
        started = time.monotonic()
        for group in range(self.GROUPS):
            self.group(rng, group)
        took = time.monotonic() - started
        in_flight = sum(1 for sent, confirmed in self.stats if sent > confirmed)
        print(f"\ncrash_test: seed {SEED}, {len(self.stats)} kills in {took:.1f} s, "
              f"{in_flight} with SENDs in flight; sent/confirmed per kill: {self.stats}",
              file=sys.stderr)
        self.assertLess(took, scaled(110), f"seed {SEED}: the crash rounds took {took:.1f} s")

    def group(self, rng, group):
        # The last group commits with durability: power (an fsync per commit) instead of the
        # default process: what a kill -9 may take is the same.
        durability = "power" if group == self.GROUPS - 1 else "process"
        config = {"journal": dict(self.JOURNAL, durability=durability)}
        self.broker = Broker.start(config=config)
        data_dir = self.broker.data_dir
        expected = []  # bodies in x-seq order: the history verified so far
        for kill in range(self.KILLS_PER_GROUP):
            ctx = f"seed {SEED}, group {group} ({durability}), kill {kill}"
            pub = Publisher(self.broker.tcp_port, f"g{group}k{kill}", self.WINDOW, self.MAX_PER_ROUND)
            pub.start()
            time.sleep(rng.uniform(0.05, 0.5))  # the random moment of the crash
            code = self.broker.kill()
            log = self.broker.log()
            pub.join(scaled(15))
            self.assertFalse(pub.is_alive(), f"{ctx}: publisher still running after the kill")
            self.assertIsNone(pub.error, f"{ctx}: {pub.error}\n{log}")
            self.assertEqual(code, -9, f"{ctx}: stompd exited with {code} before the kill\n{log}")
            self.stats.append((len(pub.sent), len(pub.confirmed)))

            self.broker = Broker.start(config=config, data_dir=data_dir)
            expected = self.verify(ctx, expected, pub, log)
        code, graceful = self.broker.stop()
        log = self.broker.log()
        self.broker.cleanup()
        self.broker = None
        self.assertEqual((code, graceful), (0, True), f"seed {SEED}, group {group}\n{log}")

    def verify(self, ctx, expected, pub, log_before_kill):
        def where():
            return f"{ctx}\n(before the kill) {log_before_kill}\n(after restart) {self.broker.log()}"

        base = len(expected)
        # RECEIPTs come in publish order and name consecutive x-seq after the old history.
        self.assertEqual(pub.confirmed_order, pub.sent[:len(pub.confirmed_order)], ctx)
        for i, body in enumerate(pub.confirmed_order):
            self.assertEqual(pub.confirmed[body], base + i + 1, f"{ctx}: RECEIPT x-seq of {body}")

        sub = Stomp.connected(self.broker.tcp_port)
        try:
            replayed, receipt = sub.subscribe_replay(DEST, "v", "after:0", timeout=scaled(20))
            n = len(replayed)
            self.assertEqual(seqs_of(replayed), list(range(1, n + 1)), f"x-seq from 1, no gap\n{where()}")
            self.assertTrue(all(m[1].get("x-replayed") == "true" for m in replayed), ctx)
            self.assertEqual((receipt.get("x-replay-count"), receipt.get("x-head-seq"),
                              receipt.get("x-replay-complete")), (str(n), str(n), "true"),
                             f"{ctx}: RECEIPT {receipt}")
            bodies = bodies_of(replayed)
            self.assertEqual(bodies[:base], expected, f"history before this round changed\n{where()}")
            tail = bodies[base:]
            # What survived of this round is the start of what was sent: in order, once each.
            self.assertEqual(tail, pub.sent[:len(tail)],
                             f"round's stored messages are not a prefix of the publish order "
                             f"(stored {len(tail)}, sent {len(pub.sent)})\n{where()}")
            self.assertGreaterEqual(len(tail), len(pub.confirmed),
                                    f"confirmed messages lost: {len(pub.confirmed)} confirmed, "
                                    f"{len(tail)} stored\n{where()}")

            # The next message continues the sequence, and reaches the replaying subscriber live.
            other = Stomp.connected(self.broker.tcp_port)
            try:
                r = other.publish_confirmed(DEST, f"{pub.prefix}-after")
            finally:
                other.disconnect()
            self.assertEqual(r.get("x-seq"), str(n + 1), f"sequence continues at head+1\n{where()}")
            live = sub.frame(scaled(10))
            self.assertEqual((live[0], live[1].get("x-seq"), live[2].decode()),
                             ("MESSAGE", str(n + 1), f"{pub.prefix}-after"), describe(live))
            self.assertNotIn("x-replayed", live[1])
        finally:
            sub.close()
        return bodies + [f"{pub.prefix}-after"]


class DurableQueueCrashTest(unittest.TestCase):
    """A /queue/ is durable by default: kill -9 while producers send and a consumer works
    (client-individual acks, some messages held unacknowledged at the kill), then a restart
    on the same directory. Every receipted message is delivered at least once, exactly once
    unless the consumer held it unacknowledged at the kill (then again, redelivered:true);
    an acknowledged one never comes back. A journal.destinations rule with journaled: false
    keeps a queue in memory only: its messages do not survive."""

    QUEUE = "/queue/crash.jobs"
    CONFIG = {"journal": {"destinations": [{"pattern": "/queue/fast.**", "journaled": False}]}}

    def setUp(self):
        self.broker = None

    def tearDown(self):
        if self.broker:
            self.broker.kill()
            self.broker.cleanup()

    def consume(self, conn, until, ack=True, timeout=None):
        """MESSAGEs until `until(list)` holds, ACKing each when `ack`; (body, headers) each."""
        got = []
        deadline = time.monotonic() + (timeout or scaled(10))
        while not until(got):
            self.assertLess(time.monotonic(), deadline, f"only {len(got)} messages came")
            frame = conn.frame(max(0.01, deadline - time.monotonic()))
            self.assertEqual(frame[0], "MESSAGE", describe(frame))
            got.append((frame[2].decode(), frame[1]))
            if ack:
                conn.send_frame("ACK", [("id", frame[1]["ack"])])
        return got

    def subscribe(self, conn, dest, prefetch):
        conn.send_frame("SUBSCRIBE", [("id", "q"), ("destination", dest),
                                      ("ack", "client-individual"),
                                      ("prefetch-count", str(prefetch)), ("receipt", "s")])
        frame = conn.frame(scaled(5))
        self.assertEqual(frame[0], "RECEIPT", describe(frame))

    def test_receipted_queue_messages_survive_kill_9_and_acked_ones_stay_gone(self):
        rng = random.Random(SEED)
        self.broker = Broker.start(config=self.CONFIG)
        data_dir = self.broker.data_dir
        consumer = Stomp.connected(self.broker.tcp_port)
        self.subscribe(consumer, self.QUEUE, prefetch=10)
        fast = Stomp.connected(self.broker.tcp_port)
        fast.publish_confirmed("/queue/fast.lane", "gone with the process")
        pub = Publisher(self.broker.tcp_port, "job", window=20, limit=3000, destination=self.QUEUE)
        pub.start()
        # The consumer acknowledges what it gets for a while, then holds its last ten.
        acked = self.consume(consumer, lambda got: len(got) >= 200)
        held = self.consume(consumer, lambda got: len(got) >= 10, ack=False)
        time.sleep(rng.uniform(0.0, 0.2))
        code = self.broker.kill()
        pub.join(scaled(15))
        self.assertIsNone(pub.error, pub.error)
        self.assertEqual(code, -9)
        consumer.close()
        fast.close()

        self.broker = Broker.start(config=self.CONFIG, data_dir=data_dir)
        again = Stomp.connected(self.broker.tcp_port)
        self.subscribe(again, self.QUEUE, prefetch=0)
        acked_bodies = {b for b, _ in acked}
        held_bodies = {b for b, _ in held}
        expected = set(pub.confirmed) - acked_bodies  # at least these
        got = self.consume(again, lambda g: expected <= {b for b, _ in g}, timeout=scaled(30))
        bodies = [b for b, _ in got]
        self.assertFalse(acked_bodies & set(bodies), "an acknowledged message came back")
        self.assertEqual(len(bodies), len(set(bodies)), "each once after the restart")
        self.assertTrue(held_bodies <= set(bodies), "what was held unacked comes again")
        self.assertTrue(all(h.get("redelivered") == "true" for _, h in got),
                        "restored messages are marked redelivered")
        extra = set(bodies) - expected  # sent, stored, but its RECEIPT lost in the kill
        self.assertTrue(extra <= set(pub.sent) - set(pub.confirmed), extra)
        print(f"\ncrash_test: durable queue, seed {SEED}: {len(pub.confirmed)} receipted, "
              f"{len(acked)} acked before the kill, {len(bodies)} delivered after it",
              file=sys.stderr)
        # The in-memory queue lost its message with the process.
        lane = Stomp.connected(self.broker.tcp_port)
        self.subscribe(lane, "/queue/fast.lane", prefetch=0)
        with self.assertRaises(TimeoutError):
            frame = lane.frame(0.5)
            self.fail(f"a journaled: false queue kept {describe(frame)}")
        for c in (again, lane):
            c.close()
        code, graceful = self.broker.stop()
        self.assertEqual((code, graceful), (0, True), self.broker.log())
        self.assertEqual(sanitizer_reports(self.broker.log()), [])
        self.broker.cleanup()
        self.broker = None


class ShutdownTest(unittest.TestCase):
    """SIGTERM while passcode checks wait on the verifier and journal appends are in flight:
    the shutdown order (server::stop, broker_context) leaves nothing that posts to freed event
    loops or writes freed metrics. A sanitizer build reports any use-after-free on stderr."""

    CHECKS = 120  # CONNECTs waiting for their passcode check when the SIGTERM comes
    FLOODERS = 3

    def test_sigterm_with_passcode_checks_and_journal_appends_pending_exits_cleanly(self):
        passcode = "shutdown-passcode"
        config = {"auth": {"anonymous": True,
                           "users": [{"name": "waiter",
                                      "passcode": f'"{pbkdf2_hash(passcode, 200_000)}"'}]}}
        broker = Broker.start(config=config)
        self.addCleanup(broker.cleanup)
        self.addCleanup(broker.kill)  # first; a no-op once it has exited
        port = broker.tcp_port

        # Journal appends in flight: publishers that never wait for a receipt.
        stop = threading.Event()
        body = "j" * 1024

        def flood(n):
            c = None
            try:
                c = Stomp.connected(port)
                for i in range(20_000):  # bounded: at most 20 MiB each
                    if stop.is_set():
                        break
                    c.publish(f"/topic/shutdown.{n}", f"{i}:{body}")
            except (OSError, ConnectionError):
                pass  # the broker closed us: it is stopping
            finally:
                if c:
                    c.close()

        flooders = [threading.Thread(target=flood, args=(n,), daemon=True)
                    for n in range(self.FLOODERS)]
        for t in flooders:
            t.start()

        # Passcode checks: every CONNECT names the static user; one check runs at a time.
        waiting = []
        for _ in range(self.CHECKS):
            s = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
            self.addCleanup(s.close)
            s.sendall(f"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:waiter\n"
                      f"passcode:{passcode}\n\n\0".encode())
            waiting.append(s)
        time.sleep(scaled(0.5))  # the appends and checks are under way

        code, graceful = broker.stop(timeout=scaled(20))
        stop.set()
        for t in flooders:
            t.join(timeout=scaled(5))
        log = broker.log()
        self.assertTrue(graceful, f"stompd did not stop on SIGTERM\n{log[-4000:]}")
        self.assertEqual(sanitizer_reports(log), [], log[-8000:])
        self.assertEqual(code, 0, log[-4000:])


if __name__ == "__main__":
    unittest.main()
