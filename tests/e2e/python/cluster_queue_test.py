"""/queue/ destinations shared by several stompd nodes through one Redis (a stream with a
consumer group per queue): the real binaries, a redis-server of the test's own
(redis_support.RedisServer), raw STOMP 1.2 over TCP (history_support.Stomp).

What is checked:
  CompetingConsumersTest  producers on two nodes, a consumer on each of three (ack modes
                          client-individual, client and auto, prefetch-count 5): every
                          receipted message reaches exactly one consumer, once; a queue
                          message's RECEIPT carries no x-seq; with prefetch-count 2 a
                          backlog is spread over consumers on all three nodes.
  HandOverTest            NACK redelivers (redelivered:true); an UNSUBSCRIBE with
                          unacknowledged messages gives them back at once to a consumer on
                          another node, and so does a node stopping (SIGTERM); a full queue
                          refuses a SEND with ERROR "queue full".
  NodeCrashTest           kill -9 of a node whose consumer holds unacknowledged messages: a
                          consumer on another node gets them, marked redelivered, after
                          cluster.redis.queue_redelivery_timeout_ms; nothing receipted is lost.
  RedisRestartTest        kill -9 of Redis with the AOF on: queued messages are still there
                          for a consumer that subscribes after the restart.

Every wait has a deadline (scaled by STOMPD_E2E_TIME_SCALE) and every thread ends by itself.
Run with /usr/bin/python3. Not named test_*.py: CTest runs it as its own test
(e2e_cluster_queues).
"""

import collections
import time
import unittest

from cluster_test import ClusterCase
from history_support import BrokerError, Stomp, describe
from stompd_harness import scaled, unique

REDELIVERY_MS = 1500


class QueueCase(ClusterCase):
    EXTRA_CONFIG = {"limits": {"max_queue_messages": 10000}}

    def redis_settings(self):
        return {"queue_redelivery_timeout_ms": REDELIVERY_MS}

    def consumer(self, node, queue, ack="client-individual", prefetch=5, sub_id="q"):
        conn = self.connect(node)
        conn.send_frame("SUBSCRIBE", [("id", sub_id), ("destination", queue), ("ack", ack),
                                      ("prefetch-count", str(prefetch)), ("receipt", "sub")])
        frame = conn.frame(scaled(10))
        self.assertEqual((frame[0], frame[1].get("receipt-id")), ("RECEIPT", "sub"),
                         describe(frame))
        return conn

    def send_all(self, conn, queue, bodies):
        """SENDs with receipts, pipelined; returns once every RECEIPT came (in order)."""
        for b in bodies:
            conn.publish(queue, b, receipt=b)
        for b in bodies:
            frame = conn.frame(scaled(20))
            if frame[0] == "ERROR":
                raise BrokerError(frame)
            self.assertEqual((frame[0], frame[1].get("receipt-id")), ("RECEIPT", b),
                             describe(frame))
            self.assertNotIn("x-seq", frame[1], "a queue message has no x-seq")

    def drain(self, consumers, expected, ack=True, timeout=None):
        """Reads MESSAGEs from every consumer (round robin, short waits) until `expected`
        bodies came in all, acknowledging each (ACK with its `ack` id) when `ack`. Returns
        {consumer index: [(body, headers)]}."""
        got = collections.defaultdict(list)
        total = 0
        deadline = time.monotonic() + (timeout or scaled(30))
        while total < expected:
            self.assertLess(time.monotonic(), deadline,
                            f"{total} of {expected} messages came: {dict(got)}\n{self.logs()}")
            for k, c in enumerate(consumers):
                try:
                    frame = c.frame(0.01)
                except TimeoutError:
                    continue
                self.assertEqual(frame[0], "MESSAGE", describe(frame))
                got[k].append((frame[2].decode(), frame[1]))
                total += 1
                if ack and "ack" in frame[1]:
                    c.send_frame("ACK", [("id", frame[1]["ack"])])
        return got

    def assert_quiet(self, consumers, seconds):
        """No consumer gets anything more for `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for c in consumers:
                try:
                    frame = c.frame(0.05)
                except TimeoutError:
                    continue
                self.fail(f"unexpected {describe(frame)}")


class CompetingConsumersTest(QueueCase):
    PER_PRODUCER = 100

    def test_every_receipted_message_reaches_exactly_one_consumer_on_some_node(self):
        queue = unique("/queue/cluster.work")
        consumers = [self.consumer(n, queue, ack)
                     for n, ack in zip(self.nodes, ("client-individual", "client", "auto"))]
        # Producers on two nodes only: the third node's consumer gets its share from Redis.
        producers = [self.connect(n) for n in self.nodes[:2]]
        sent = []
        for k, p in enumerate(producers):
            bodies = [f"p{k}-{i}" for i in range(self.PER_PRODUCER)]
            self.send_all(p, queue, bodies)
            sent += bodies
        got = self.drain(consumers, len(sent))
        bodies = [b for msgs in got.values() for b, _ in msgs]
        self.assertEqual(collections.Counter(bodies), collections.Counter(sent),
                         "every message once, across the consumers")
        self.assertTrue(got[2], "the consumer on the node without producers took its share "
                                f"{ {k: len(v) for k, v in got.items()} }")
        for k, msgs in got.items():
            self.assertFalse([b for b, h in msgs if "redelivered" in h], f"consumer {k}")
        self.assert_quiet(consumers, scaled(REDELIVERY_MS / 1000 * 2))

    def test_prefetch_spreads_a_backlog_over_the_nodes_consumers(self):
        queue = unique("/queue/cluster.spread")
        self.send_all(self.connect(self.nodes[0]), queue, [f"m{i}" for i in range(60)])
        consumers = [self.consumer(n, queue, prefetch=2) for n in self.nodes]
        got = self.drain(consumers, 60)
        self.assertEqual(sorted(b for msgs in got.values() for b, _ in msgs),
                         sorted(f"m{i}" for i in range(60)))
        self.assertTrue(all(len(got[k]) >= 5 for k in range(3)),
                        f"each took a share: { {k: len(v) for k, v in got.items()} }")


class HandOverTest(QueueCase):
    """With a redelivery timeout of a minute: what arrives within seconds was handed over,
    not claimed after the timeout."""
    NODES = 2
    EXTRA_CONFIG = {"limits": {"max_queue_messages": 20}}

    def redis_settings(self):
        return {"queue_redelivery_timeout_ms": 60000}

    def test_nack_redelivers_and_unsubscribe_gives_back_at_once(self):
        queue = unique("/queue/cluster.handover")
        a, b = self.nodes
        first = self.consumer(a, queue, prefetch=10)
        self.send_all(self.connect(b), queue, [f"m{i}" for i in range(10)])
        got = self.drain([first], 10, ack=False)[0]
        self.assertEqual([body for body, _ in got], [f"m{i}" for i in range(10)])
        # NACK one: it comes again, marked redelivered.
        first.send_frame("NACK", [("id", got[0][1]["ack"])])
        again = self.drain([first], 1, ack=False)[0]
        self.assertEqual((again[0][0], again[0][1].get("redelivered")), ("m0", "true"))
        # The consumer leaves with ten unacknowledged: a consumer on the other node gets them
        # well before the redelivery timeout.
        other = self.consumer(b, queue, prefetch=0)
        first.send_frame("UNSUBSCRIBE", [("id", "q")])
        moved = self.drain([other], 10, timeout=scaled(10))[0]
        self.assertEqual(sorted(body for body, _ in moved), sorted(f"m{i}" for i in range(10)))
        self.assert_quiet([other, first], scaled(REDELIVERY_MS / 1000 * 2))

    def test_a_node_stopping_gives_back_what_its_consumers_held(self):
        queue = unique("/queue/cluster.stop")
        a, b = self.nodes
        held = self.consumer(a, queue, prefetch=6)
        self.send_all(self.connect(b), queue, [f"m{i}" for i in range(6)])
        self.drain([held], 6, ack=False)
        other = self.consumer(b, queue, prefetch=0)
        code, graceful = a.stop()
        self.assertEqual((code, graceful), (0, True), a.log())
        moved = self.drain([other], 6, timeout=scaled(10))[0]
        self.assertEqual(sorted(body for body, _ in moved), sorted(f"m{i}" for i in range(6)))

    def test_a_full_queue_refuses_a_send_on_any_node(self):
        queue = unique("/queue/cluster.full")
        a, b = self.nodes
        self.send_all(self.connect(a), queue, [f"m{i}" for i in range(20)])
        late = self.connect(b)
        late.publish(queue, "one too many", receipt="late")
        frame = late.frame(scaled(10))
        self.assertEqual((frame[0], frame[1].get("message")), ("ERROR", "queue full"),
                         describe(frame))
        self.assertIn("receipt-id", frame[1])
        # What was accepted is all still there.
        got = self.drain([self.consumer(b, queue, prefetch=0)], 20)[0]
        self.assertEqual(sorted(b for b, _ in got), sorted(f"m{i}" for i in range(20)))


class NodeCrashTest(QueueCase):
    NODES = 2

    def test_messages_held_by_a_killed_node_go_to_another_nodes_consumer(self):
        queue = unique("/queue/cluster.crash")
        victim, survivor = self.nodes
        held = self.consumer(victim, queue, prefetch=8)
        self.send_all(self.connect(survivor), queue, [f"m{i}" for i in range(20)])
        on_victim = self.drain([held], 8, ack=False)[0]
        self.kill_node(0)
        killed_at = time.monotonic()
        taker = self.consumer(survivor, queue, prefetch=0)
        got = self.drain([taker], 20, timeout=scaled(20))[0]
        self.assertEqual(sorted(b for b, _ in got), sorted(f"m{i}" for i in range(20)),
                         "every message, the dead node's too")
        redelivered = {b for b, h in got if h.get("redelivered") == "true"}
        self.assertEqual(redelivered, {b for b, _ in on_victim}, "the dead node's, marked")
        self.assertGreaterEqual(time.monotonic() - killed_at, REDELIVERY_MS / 1000 * 0.5,
                                "claimed after the redelivery timeout, not before")
        self.assert_quiet([taker], scaled(REDELIVERY_MS / 1000 * 2))


class RedisRestartTest(QueueCase):
    NODES = 2
    APPENDONLY = True

    def test_queued_messages_survive_a_redis_kill_9(self):
        queue = unique("/queue/cluster.restart")
        a, b = self.nodes
        self.send_all(self.connect(a), queue, [f"m{i}" for i in range(30)])
        self.redis.kill()
        self.redis.restart()
        self.wait_all_readyz(200, scaled(20))
        got = self.drain([self.consumer(b, queue, prefetch=0)], 30)[0]
        self.assertEqual(sorted(body for body, _ in got), sorted(f"m{i}" for i in range(30)))


if __name__ == "__main__":
    unittest.main()
