"""Several stompd nodes sharing /topic/ history through one Redis (cluster.redis, --redis):
the real binaries, a redis-server of the test's own on a free loopback port
(redis_support.RedisServer), raw STOMP 1.2 over TCP (history_support.Stomp).

What is checked:
  FanOutTest         publishers on three nodes, a subscriber on each: every subscriber gets
                     every message exactly once, x-seq consecutive from 1, one x-epoch; late
                     joiners (x-replay after:0 and last:50) join replay and live with no gap;
                     the first message sent on one node after a SUBSCRIBE's RECEIPT on
                     another reaches that subscriber.
  NodeCrashTest      kill -9 of a node mid-run: its publisher resends on another node what had
                     no RECEIPT, its subscriber resumes there with after:<last x-seq> + x-epoch;
                     the history keeps every receipted message, duplicates only of resent ones,
                     and every subscriber's view is gap-free.
  RedisRestartTest   kill -9 of Redis with the AOF on (appendfsync always): SENDs meanwhile get
                     an ERROR, never a RECEIPT; after the restart the receipted history is all
                     there and the sequence goes on at head+1 in the same epoch; a subscriber
                     on another node keeps receiving.
  OlderHistoryTest   x-replay: before:SEQ pages back through the history on another node.
  IdempotencyTest    a SEND resent with its x-idempotency-key on another node gets the first
                     RECEIPT and is stored and delivered once.
  RedisDataLossTest  Redis back on an empty directory: a new epoch from x-seq 1, and resuming
                     with the old epoch's after:S says x-replay-complete: false.
  ReadinessTest      /readyz: 200 with Redis, 503 without, 200 again after the reconnect;
                     --redis overrides cluster.redis.addresses.
Queues across nodes are in cluster_queue_test.py.

Every wait has a deadline (scaled by STOMPD_E2E_TIME_SCALE) and every thread ends by itself.
Run with /usr/bin/python3. Not named test_*.py: CTest runs it as its own test (e2e_cluster).
"""

import collections
import http.client
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

from history_support import BrokerError, Stomp, bodies_of, describe, seq_of, seqs_of
from redis_support import RedisServer, free_port
from stompd_harness import Broker, metric, readyz, scaled, stop_all, unique

CONNECT_TIMEOUT_MS = 1000
COMMAND_TIMEOUT_MS = 2000
# Time a node may take to notice Redis is gone and fail what waits on it: the command
# timeout, plus slack for a sanitizer build on a busy machine.
NOTICE_OUTAGE_S = COMMAND_TIMEOUT_MS / 1000 + scaled(5)
# Time a node may take to reconnect once Redis is back (it retries with back-off).
RECONNECT_S = scaled(20)
HISTORY_ALL = "last:10000"  # the default replay cap: more than any test here publishes

_STARTED = re.compile(r"started version=\S+ threads=\d+ node=(\S+)")


def node_config(name, addresses=None, extra=None, redis_extra=None):
    """A node's config: its name and the Redis timeouts; the addresses come from --redis
    unless given here; `extra`: more top-level sections; `redis_extra`: more cluster.redis
    keys. key_prefix is quoted: a plain scalar may not end with ':'."""
    redis = {"key_prefix": '"stompd-e2e:"', "connect_timeout_ms": CONNECT_TIMEOUT_MS,
             "command_timeout_ms": COMMAND_TIMEOUT_MS, **(redis_extra or {})}
    if addresses:
        redis["addresses"] = addresses
    return {"node_name": name, "cluster": {"redis": redis}, **(extra or {})}


def subscribe_resuming(conn, destination, sub_id, replay, epoch=None, timeout=None):
    """Stomp.subscribe_replay with x-epoch as well when `epoch` is given."""
    return conn.subscribe_replay(destination, sub_id, replay, timeout,
                                 headers=[("x-epoch", epoch)] if epoch else ())


def read_history(port, destination):
    """Everything stored for `destination`, replayed on the node at `port`: (MESSAGEs,
    RECEIPT headers)."""
    conn = Stomp.connected(port)
    try:
        return conn.subscribe_replay(destination, "history", HISTORY_ALL, timeout=scaled(20))
    finally:
        conn.disconnect()


class Publisher(threading.Thread):
    """Publishes `count` messages with receipts, bodies "<name>-<i>" (the receipt id is the
    body too), up to `window` SENDs without a RECEIPT, `interval` seconds apart (a pace, so a
    kill lands mid-run). When its node goes away it moves to the next port in `ports` and
    sends again every SEND that had no RECEIPT yet; those bodies are in `resent`.

    confirmed: body -> RECEIPT headers; receipt_order: bodies in the order RECEIPTs came."""

    def __init__(self, ports, destination, name, count, window=20, interval=0.0):
        super().__init__(daemon=True, name=name)
        self.ports = list(ports)
        self.conn = Stomp.connected(self.ports[0])
        self.destination = destination
        self.count = count
        self.window = window
        self.interval = interval
        self.sent = 0                  # distinct bodies sent so far
        self.progress = threading.Condition()
        self.confirmed = {}
        self.receipt_order = []
        self.resent = set()
        self.failovers = 0
        self.stopping = threading.Event()
        self.error = None

    def body(self, i):
        return f"{self.name}-{i}"

    def run(self):
        try:
            self.publish_all()
        except Exception as e:  # reported by the test, with the brokers' logs
            self.error = e
        finally:
            self.conn.close()

    def publish_all(self):
        pending = {}  # receipt id (= body) -> body, in the order sent
        while (self.sent < self.count or pending) and not self.stopping.is_set():
            try:
                if self.sent < self.count and len(pending) < self.window:
                    body = self.body(self.sent)
                    pending[body] = body  # before the SEND: a failed SEND is resent
                    with self.progress:
                        self.sent += 1
                        self.progress.notify_all()
                    self.conn.publish(self.destination, body, receipt=body)
                    if self.interval:
                        time.sleep(self.interval)
                else:
                    self.take_receipt(pending)
            except TimeoutError:  # an OSError too, but a broker that went quiet is a failure
                raise AssertionError(f"publisher {self.name}: no RECEIPT in time; "
                                     f"{len(pending)} pending") from None
            except (ConnectionError, OSError) as e:
                self.fail_over(e, pending)

    def take_receipt(self, pending):
        frame = self.conn.frame(scaled(15))
        if frame[0] == "ERROR":
            raise BrokerError(frame)
        rid = frame[1].get("receipt-id")
        if frame[0] != "RECEIPT" or rid not in pending:
            raise AssertionError(f"publisher {self.name}: unexpected {describe(frame)}")
        if "x-seq" not in frame[1] or not frame[1].get("x-epoch"):
            raise AssertionError(f"SEND RECEIPT without x-seq and x-epoch: {describe(frame)}")
        body = pending.pop(rid)
        self.confirmed[body] = frame[1]
        self.receipt_order.append(body)

    def fail_over(self, error, pending):
        self.failovers += 1
        if self.failovers >= len(self.ports):
            raise AssertionError(f"publisher {self.name}: lost its last node: {error!r}")
        self.conn.close()
        self.conn = Stomp.connected(self.ports[self.failovers])
        for body in pending:
            self.resent.add(body)
            self.conn.publish(self.destination, body, receipt=body)

    def wait_sent(self, n, timeout=None):
        with self.progress:
            if not self.progress.wait_for(lambda: self.sent >= n or not self.is_alive(),
                                          scaled(10) if timeout is None else timeout):
                raise AssertionError(f"publisher {self.name} sent only {self.sent} of {n} in time")

    def seq_of(self, body):
        return int(self.confirmed[body]["x-seq"])

    def stop(self):
        self.stopping.set()
        if self.ident is not None:  # started
            self.join(scaled(5))


class Subscription:
    """One SUBSCRIBE and what it brought: the x-replay (and x-epoch) asked for, the messages
    replayed before its RECEIPT, the RECEIPT's headers."""

    def __init__(self, port, replay, epoch, replayed, receipt):
        self.port = port
        self.replay = replay
        self.epoch = epoch
        self.replayed = replayed
        self.receipt = receipt


class Subscriber(threading.Thread):
    """One subscriber's view of `destination`. The constructor connects and subscribes (to
    its RECEIPT) on ports[0], with `replay` as x-replay if given; the thread then reads
    MESSAGEs until `through` says up to which x-seq. When its node goes away it subscribes on
    the next port with x-replay after:<last x-seq seen> and that x-epoch.

    frames: every MESSAGE in arrival order, replayed or live; subscriptions: one Subscription
    per SUBSCRIBE; live: the MESSAGEs that came after a RECEIPT."""

    POLL_S = 0.2  # how often the reader looks at `through` and `stopping` between frames

    def __init__(self, ports, destination, name, replay=None):
        super().__init__(daemon=True, name=name)
        self.ports = list(ports)
        self.destination = destination
        self.frames = []
        self.live = []
        self.subscriptions = []
        self.failovers = 0
        self.through = None    # x-seq to read up to, set by ClusterCase.finish()
        self.stopping = threading.Event()
        self.error = None
        self.conn = Stomp.connected(self.ports[0])
        self.subscribe(replay)

    @property
    def last_seq(self):
        return seq_of(self.frames[-1]) if self.frames else 0

    @property
    def epoch(self):
        return self.frames[-1][1].get("x-epoch") if self.frames else None

    def subscribe(self, replay, epoch=None):
        replayed, receipt = subscribe_resuming(self.conn, self.destination, self.name, replay,
                                               epoch)
        self.subscriptions.append(Subscription(self.ports[self.failovers], replay, epoch,
                                               replayed, receipt))
        self.frames += replayed

    def run(self):
        try:
            while not self.stopping.is_set() and not self.has_all():
                try:
                    frame = self.conn.frame(self.POLL_S)
                except TimeoutError:  # an OSError too: nothing yet, look at the flags again
                    continue
                except (ConnectionError, OSError) as e:
                    self.fail_over(e)
                    continue
                if frame[0] != "MESSAGE":
                    raise AssertionError(f"subscriber {self.name}: unexpected {describe(frame)}")
                self.frames.append(frame)
                self.live.append(frame)
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.conn.close()

    def has_all(self):
        return self.through is not None and self.last_seq >= self.through

    def fail_over(self, error):
        self.failovers += 1
        if self.failovers >= len(self.ports):
            raise AssertionError(f"subscriber {self.name}: lost its last node: {error!r}")
        self.conn.close()
        self.conn = Stomp.connected(self.ports[self.failovers])
        self.subscribe(f"after:{self.last_seq}", self.epoch)

    def state(self):
        """One line for a failure message."""
        return (f"{self.name}: {len(self.frames)} messages, last x-seq {self.last_seq}, "
                f"{len(self.subscriptions)} SUBSCRIBEs, error {self.error!r}")

    def stop(self):
        self.stopping.set()
        if self.ident is not None:  # started
            self.join(scaled(5))


class ClusterCase(unittest.TestCase):
    """NODES stompd nodes on one Redis (APPENDONLY: with its AOF), each with --redis. A node
    that does not stop with exit code 0 on SIGTERM, or whose sanitizer build reports anything,
    fails the test."""

    NODES = 3
    APPENDONLY = False
    EXTRA_CONFIG = None  # more config sections for every node
    REDIS_ARGS = ()      # more redis-server arguments

    def redis_settings(self):
        """More cluster.redis keys for every node."""
        return {}

    def setUp(self):
        self.redis = RedisServer(appendonly=self.APPENDONLY, extra_args=self.REDIS_ARGS)
        self.addCleanup(self.redis.cleanup)  # last: the nodes stop while Redis is still up
        self.nodes = []
        self.killed = set()  # indexes into self.nodes
        self.subscribers = []
        self.addCleanup(self.stop_nodes)
        for k in range(self.NODES):
            self.start_node(f"node-{k}")

    # --- nodes ---

    def start_node(self, name, addresses=None):
        """Starts a node with --redis naming our Redis and waits until it logged its start
        with `name` and /readyz says ready."""
        node = Broker.start(config=node_config(name, addresses, self.EXTRA_CONFIG,
                                               self.redis_settings()),
                            extra_args=["--redis", self.redis.address])
        self.nodes.append(node)
        deadline = time.monotonic() + scaled(10)
        while not _STARTED.search(node.log()):
            if time.monotonic() > deadline:
                self.fail(f"no 'started ... node=' line from {name}\n{node.log()}")
            time.sleep(0.02)  # polling the log another thread collects
        self.assertEqual(_STARTED.search(node.log()).group(1), name, node.log())
        self.wait_readyz(node, 200, scaled(10))
        return node

    def kill_node(self, k):
        code = self.nodes[k].kill()
        self.killed.add(k)
        self.assertEqual(code, -9, f"node-{k} exited with {code} before the kill\n"
                                   f"{self.nodes[k].log()}")

    def stop_nodes(self):
        stop_all(self.nodes, self.killed)

    def logs(self):
        """Every node's log and Redis's, for a failure message."""
        return "\n".join([f"=== node-{k} ===\n{n.log()}" for k, n in enumerate(self.nodes)]
                         + [self.redis.log()])

    def wait_readyz(self, node, status, timeout):
        """Polls /readyz until it answers `status` (200 must say "ready")."""
        deadline = time.monotonic() + timeout
        while True:
            got = readyz(node)
            if got[0] == status and (status != 200 or got[1].strip() == "ready"):
                return
            if time.monotonic() > deadline:
                self.fail(f"/readyz still {got} after {timeout:.1f} s, expected {status}\n"
                          f"{node.log()}\n{self.redis.log()}")
            time.sleep(0.05)  # polling a state that changes on the node's own timers

    def wait_all_readyz(self, status, timeout):
        for k, node in enumerate(self.nodes):
            if k not in self.killed:
                self.wait_readyz(node, status, timeout)

    # --- clients ---

    def connect(self, node):
        conn = Stomp.connected(node.tcp_port)
        self.addCleanup(conn.close)
        return conn

    def publisher(self, nodes, destination, name, count, **kwargs):
        p = Publisher([n.tcp_port for n in nodes], destination, name, count, **kwargs)
        self.addCleanup(p.stop)
        return p

    def subscriber(self, nodes, destination, name, replay=None):
        s = Subscriber([n.tcp_port for n in nodes], destination, name, replay)
        self.addCleanup(s.stop)
        self.subscribers.append(s)
        return s

    def finish(self, subs, through, timeout=None):
        """Lets each subscriber read up to x-seq `through`, all within one deadline, and
        stops those that did not get there."""
        deadline = time.monotonic() + (scaled(30) if timeout is None else timeout)
        for s in subs:
            s.through = through
        for s in subs:
            s.join(max(0.0, deadline - time.monotonic()))
        for s in subs:
            s.stop()

    def join_publishers(self, pubs, timeout=None):
        for p in pubs:
            p.join(scaled(60) if timeout is None else timeout)
            self.assertFalse(p.is_alive(), f"publisher {p.name} still running; sent {p.sent}, "
                                           f"confirmed {len(p.confirmed)}")
            self.assertIsNone(p.error, f"publisher {p.name}: {p.error}\n{self.logs()}")
            self.assertEqual(len(p.confirmed), p.count, f"publisher {p.name}")

    # --- checks ---

    def check_receipts(self, pubs):
        """Every RECEIPT names one epoch, no two name the same x-seq, and one publisher's
        RECEIPTs come with rising x-seq (in publish order, unless it resent after a
        failover). Returns (x-seq -> body, epoch)."""
        seq_to_body = {}
        epochs = set()
        for p in pubs:
            seqs = [p.seq_of(b) for b in p.receipt_order]
            self.assertEqual(seqs, sorted(set(seqs)),
                             f"publisher {p.name}: RECEIPT x-seq not rising: {seqs}")
            if not p.failovers:
                self.assertEqual(p.receipt_order, [p.body(i) for i in range(p.count)],
                                 f"publisher {p.name}: RECEIPTs out of publish order")
            for body, receipt in p.confirmed.items():
                seq = int(receipt["x-seq"])
                self.assertNotIn(seq, seq_to_body,
                                 f"x-seq {seq} given to {seq_to_body.get(seq)} and {body}")
                seq_to_body[seq] = body
                epochs.add(receipt["x-epoch"])
        self.assertEqual(len(epochs), 1, f"RECEIPTs name several epochs: {epochs}")
        return seq_to_body, epochs.pop()

    def assert_gap_free(self, seqs, first, last, what):
        if seqs != list(range(first, last + 1)):
            counts = collections.Counter(seqs)
            backwards = [i for i in range(1, len(seqs)) if seqs[i] < seqs[i - 1]]
            self.fail(f"{what}: x-seq not consecutive from {first} to {last}: "
                      f"duplicates {sorted(q for q, c in counts.items() if c > 1)[:20]}, "
                      f"missing {sorted(set(range(first, last + 1)) - set(seqs))[:20]}, "
                      f"going back at positions {backwards[:5]}; "
                      f"{len(seqs)} messages, first {seqs[:5]}, last {seqs[-5:]}")

    def assert_view(self, sub, first, last, seq_to_body, epoch):
        """`sub` (after finish()) saw x-seq first..last exactly once each, in order, each the
        message the RECEIPTs (or the history) say it is, in `epoch`; replayed frames are
        flagged and live ones are not."""
        what = f"subscriber {sub.name}"
        states = "\n".join("  " + s.state() for s in self.subscribers)
        self.assertIsNone(sub.error, f"{what}: {sub.error}\n{states}\n{self.logs()}")
        self.assertGreaterEqual(sub.last_seq, last, f"{what}: did not reach x-seq {last} in "
                                                    f"time\n{states}\n{self.logs()}")
        self.assert_gap_free(seqs_of(sub.frames), first, last, what)
        ids = set()
        for f in sub.frames:
            seq = seq_of(f)
            self.assertEqual(f[2].decode(), seq_to_body.get(seq),
                             f"{what}: x-seq {seq} is not the message stored there: {describe(f)}")
            self.assertEqual(f[1].get("x-epoch"), epoch, f"{what}: {describe(f)}")
            self.assertTrue(f[1].get("message-id"), f"{what}: no message-id: {describe(f)}")
            ids.add(f[1]["message-id"])
        self.assertEqual(len(ids), len(sub.frames), f"{what}: a message-id used twice")
        for s in sub.subscriptions:
            for f in s.replayed:
                self.assertEqual(f[1].get("x-replayed"), "true", f"{what}: {describe(f)}")
        for f in sub.live:
            self.assertNotIn("x-replayed", f[1], f"{what}: live frame flagged: {describe(f)}")

    def assert_replay_receipt(self, sub_, first, complete, epoch, what):
        """One SUBSCRIBE's RECEIPT: it replayed first..x-head-seq, says whether that is all
        that was asked for, and names the epoch."""
        r = sub_.receipt
        ctx = f"{what}: x-replay {sub_.replay} x-epoch {sub_.epoch}: RECEIPT {r}"
        for key in ("x-replay-count", "x-head-seq", "x-replay-complete", "x-epoch"):
            self.assertIn(key, r, ctx)
        head = int(r["x-head-seq"])
        self.assertEqual(seqs_of(sub_.replayed), list(range(first, head + 1)), ctx)
        self.assertEqual(int(r["x-replay-count"]), len(sub_.replayed), ctx)
        self.assertEqual(r["x-replay-complete"], "true" if complete else "false", ctx)
        self.assertEqual(r["x-epoch"], epoch, ctx)

    def assert_send_refused(self, node, destination, body):
        """A receipted SEND while Redis is down gets an ERROR, within the command timeout
        plus slack, and never a RECEIPT."""
        conn = self.connect(node)
        started = time.monotonic()
        conn.publish(destination, body, receipt="while-down")
        try:
            frame = conn.frame(NOTICE_OUTAGE_S)
        except TimeoutError:
            self.fail(f"no ERROR for a SEND {NOTICE_OUTAGE_S:.1f} s into the Redis outage\n"
                      f"{self.logs()}")
        except (ConnectionError, OSError) as e:
            self.fail(f"connection closed without an ERROR for a SEND while Redis is down: "
                      f"{e!r}\n{self.logs()}")
        took = time.monotonic() - started
        self.assertEqual(frame[0], "ERROR",
                         f"SEND while Redis is down, after {took:.1f} s: {describe(frame)}")

    def kill_redis_and_wait_unready(self):
        self.redis.kill()
        self.wait_all_readyz(503, NOTICE_OUTAGE_S)


class FanOutTest(ClusterCase):
    PER_PUBLISHER = 200
    WINDOW = 20

    def test_every_subscriber_on_every_node_gets_every_message_once_in_seq_order(self):
        dest = unique("/topic/cluster.fanout")
        total = self.PER_PUBLISHER * len(self.nodes)
        subs = [self.subscriber([n], dest, f"sub-{k}") for k, n in enumerate(self.nodes)]
        pubs = [self.publisher([n], dest, f"p{k}", self.PER_PUBLISHER, window=self.WINDOW)
                for k, n in enumerate(self.nodes)]
        for t in subs + pubs:
            t.start()

        # Late joiners on the third node, while the publishers are busy.
        pubs[0].wait_sent(self.PER_PUBLISHER // 3)
        from_start = self.subscriber([self.nodes[2]], dest, "late-after0", replay="after:0")
        from_start.start()
        pubs[0].wait_sent(2 * self.PER_PUBLISHER // 3)
        newest = self.subscriber([self.nodes[2]], dest, "late-last50", replay="last:50")
        newest.start()

        self.join_publishers(pubs)
        seq_to_body, epoch = self.check_receipts(pubs)
        self.assertEqual(sorted(seq_to_body), list(range(1, total + 1)),
                         "RECEIPTs give x-seq 1..total")

        self.finish(subs + [from_start, newest], total)
        for s in subs:
            self.assert_view(s, 1, total, seq_to_body, epoch)

        self.assert_view(from_start, 1, total, seq_to_body, epoch)
        self.assert_replay_receipt(from_start.subscriptions[0], 1, True, epoch, "late after:0")

        head = int(newest.subscriptions[0].receipt["x-head-seq"])
        first = max(1, head - 49)
        self.assert_view(newest, first, total, seq_to_body, epoch)
        self.assert_replay_receipt(newest.subscriptions[0], first, True, epoch, "late last:50")

    ROUNDS = 50  # a race that loses the message only sometimes needs many tries to show

    def test_a_receipted_subscription_gets_the_next_message_sent_on_another_node(self):
        # A SUBSCRIBE's RECEIPT means subscribed across the cluster: the very next message,
        # sent on another node after it, arrives. A fresh destination each round.
        pub = self.connect(self.nodes[0])
        for rnd in range(self.ROUNDS):
            dest = unique("/topic/cluster.next")
            k = 1 + rnd % 2
            sub = self.connect(self.nodes[k])
            sub.subscribe_replay(dest, "s")  # no x-replay: live only, to its RECEIPT
            receipt = pub.publish_confirmed(dest, f"next-{rnd}")
            try:
                frame = sub.frame(scaled(5))
            except TimeoutError:
                self.fail(f"round {rnd}: the subscriber on node-{k} never got the message sent "
                          f"on node-0 after its SUBSCRIBE RECEIPT (SEND RECEIPT {receipt})\n"
                          f"{self.logs()}")
            self.assertEqual((frame[0], frame[1].get("x-seq"), frame[2]),
                             ("MESSAGE", receipt["x-seq"], f"next-{rnd}".encode()),
                             f"round {rnd}: {describe(frame)}")
            sub.close()


class LiveOnlyTopicTest(ClusterCase):
    """A topic the journal rules make live-only reaches the other nodes' subscribers too,
    through Redis pub/sub: without x-seq, at most once, each message once per subscriber."""
    NODES = 2
    EXTRA_CONFIG = {"journal": {"destinations": [{"pattern": "/topic/typing.**",
                                                  "journaled": False}]}}
    COUNT = 50

    def test_a_live_only_topic_reaches_every_node_once_each(self):
        dest = unique("/topic/typing.room")
        a, b = self.nodes
        here, there = self.connect(a), self.connect(b)
        for conn in (here, there):
            _, receipt = conn.subscribe_replay(dest, "typing")  # RECEIPT: following it now
            self.assertNotIn("x-head-seq", receipt)
        sender = self.connect(a)
        for i in range(self.COUNT):
            sender.publish(dest, f"typing-{i}")
        for name, conn in (("same node", here), ("other node", there)):
            frames = [conn.frame() for _ in range(self.COUNT)]
            self.assertEqual([f[0] for f in frames], ["MESSAGE"] * self.COUNT, name)
            self.assertEqual(bodies_of(frames), [f"typing-{i}" for i in range(self.COUNT)],
                             f"{name}: every message once, in publish order")
            self.assertTrue(all("x-seq" not in f[1] for f in frames), f"{name}: not journaled")
            ids = [f[1]["message-id"] for f in frames]
            self.assertEqual(len(set(ids)), self.COUNT, f"{name}: message-ids {ids}")
        # Nothing more arrives: the publishing node does not deliver its own copy twice.
        sender.publish(dest, "last")
        for conn in (here, there):
            self.assertEqual(bodies_of([conn.frame()]), ["last"])
        with self.assertRaises(BrokerError) as refused:  # no history to replay
            sender.subscribe_replay(dest, "history", replay="last:5")
        self.assertIn("history not kept", str(refused.exception))


class RedisPasswordTest(ClusterCase):
    """cluster.redis.password_file: both of a node's connections AUTH with its first line."""
    NODES = 2
    REDIS_ARGS = ("--requirepass", "s3cret-for-the-test")

    def setUp(self):
        password_dir = tempfile.mkdtemp(prefix="stompd-e2e-redis-pass-")
        self.addCleanup(shutil.rmtree, password_dir, True)
        self.password_file = os.path.join(password_dir, "redis.pass")
        with open(self.password_file, "w") as f:
            f.write("s3cret-for-the-test\n")
        super().setUp()

    def redis_settings(self):
        return {"password_file": self.password_file}

    def test_nodes_authenticate_and_share_a_room(self):
        dest = unique("/topic/cluster.auth")
        a, b = self.nodes
        reader = self.connect(b)
        reader.subscribe_replay(dest, "room")
        receipt = self.connect(a).publish_confirmed(dest, "hello")
        self.assertEqual(receipt.get("x-seq"), "1", receipt)
        frame = reader.frame()
        self.assertEqual((frame[0], frame[2]), ("MESSAGE", b"hello"), describe(frame))

    def test_a_wrong_password_keeps_the_node_unready_and_says_why(self):
        with open(self.password_file, "w") as f:
            f.write("wrong\n")
        node = Broker.start(config=node_config("node-wrong", redis_extra=self.redis_settings()),
                            extra_args=["--redis", self.redis.address])
        self.nodes.append(node)
        self.wait_readyz(node, 503, scaled(5))
        deadline = time.monotonic() + scaled(10)
        while "redis unreachable" not in node.log() and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the log another thread collects
        self.assertIn("AUTH", node.log())


class TwoPrimariesTest(ClusterCase):
    """Two independent Redis primaries: each destination lives on one of them, the same one
    for every node (a stable hash of its name), and works as with one Redis."""
    NODES = 2
    ROOMS = 24

    def setUp(self):
        self.second = RedisServer()
        self.addCleanup(self.second.cleanup)
        super().setUp()

    def start_node(self, name, addresses=None):
        node = Broker.start(config=node_config(name, None, self.EXTRA_CONFIG,
                                               self.redis_settings()),
                            extra_args=["--redis", f"{self.redis.address},{self.second.address}"])
        self.nodes.append(node)
        self.wait_readyz(node, 200, scaled(10))
        return node

    def test_rooms_are_spread_over_both_and_every_node_agrees_where(self):
        a, b = self.nodes
        rooms = [unique(f"/topic/cluster.spread.{k}") for k in range(self.ROOMS)]
        writer, other = self.connect(a), self.connect(b)
        for k, room in enumerate(rooms):
            for i in range(3):  # alternating nodes: both must pick the same Redis
                conn = writer if i % 2 == 0 else other
                self.assertEqual(conn.publish_confirmed(room, f"{k}-{i}")["x-seq"], str(i + 1))
        placed = {}
        for server in (self.redis, self.second):
            for key in server.command("KEYS", "{stompd-e2e:*}:log"):
                placed.setdefault(key.decode()[len("{stompd-e2e:"):-len("}:log")], []).append(
                    server.port)
        self.assertEqual(sorted(placed), sorted(rooms), "every room stored, and only there")
        self.assertTrue(all(len(ports) == 1 for ports in placed.values()), placed)
        on_first = sum(1 for ports in placed.values() if ports == [self.redis.port])
        self.assertTrue(0 < on_first < self.ROOMS, f"{on_first} of {self.ROOMS} on the first")
        for room in rooms:
            history, receipt = read_history(b.tcp_port, room)
            self.assertEqual(seqs_of(history), [1, 2, 3], room)


    def test_one_connections_pipelined_sends_to_both_get_their_receipts_in_order(self):
        # Rooms on different Redis primaries answer in any order; a connection's RECEIPTs
        # still come in the order of its SENDs, each one after its own message was stored.
        a, b = self.nodes
        rooms = [unique(f"/topic/cluster.pipelined.{k}") for k in range(self.ROOMS)]
        writer = self.connect(a)
        sent = []
        for i in range(10):
            for room in rooms:
                rid = f"p-{len(sent)}"
                writer.publish(room, rid, receipt=rid)
                sent.append((room, rid))
        got = []
        while len(got) < len(sent):
            frame = writer.frame(scaled(20))
            self.assertEqual(frame[0], "RECEIPT", describe(frame))
            got.append(frame[1]["receipt-id"])
        self.assertEqual(got, [rid for _, rid in sent])
        for room in rooms[:4]:
            history, _ = read_history(b.tcp_port, room)
            self.assertEqual(seqs_of(history), list(range(1, 11)), room)


def admin(broker, method, path):
    """(status, parsed JSON) of an admin API call on the node (no admin token configured)."""
    conn = http.client.HTTPConnection("127.0.0.1", broker.admin_port, timeout=scaled(5))
    try:
        conn.request(method, path)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read() or b"null")
    finally:
        conn.close()


class AdminAcrossNodesTest(ClusterCase):
    """The admin API (and so stompctl destinations, destination, history, purge) reads and
    purges the shared history from any node."""
    NODES = 2

    def test_history_destinations_and_purge_work_from_the_other_node(self):
        room = unique("/topic/cluster.admin")
        a, b = self.nodes
        pub = self.connect(a)
        for i in range(3):
            pub.publish_confirmed(room, f"m{i}")
        path = "/api/destinations/" + urllib.parse.quote(room, safe="")

        status, page = admin(b, "GET", path + "/messages")
        self.assertEqual(status, 200, page)
        self.assertEqual([(m["seq"], m["body"]) for m in page["messages"]],
                         [(1, "m0"), (2, "m1"), (3, "m2")], page)
        self.assertEqual((page["head_seq"], page["complete"]), (3, True), page)

        deadline = time.monotonic() + scaled(10)  # the list's stored counts are ~1 s old
        while True:
            status, listing = admin(b, "GET", "/api/destinations?limit=1000")
            found = [d for d in listing["destinations"] if d["name"] == room]
            if found and found[0]["stored"] == 3:
                break
            self.assertLess(time.monotonic(), deadline, f"{room} not listed on node-1: {listing}")
            time.sleep(0.1)  # polling a cache with a one-second life
        self.assertEqual((found[0]["last_seq"], found[0]["journaled"]), (3, True), found)
        status, one = admin(b, "GET", path)
        self.assertEqual((status, one["last_seq"], one["stored"]), (200, 3, 3), one)

        status, purged = admin(b, "DELETE", path + "/messages")
        self.assertEqual((status, purged["deleted"]), (200, 3), purged)
        history, receipt = read_history(a.tcp_port, room)
        self.assertEqual(history, [], "purged from node-1, gone on node-0")
        self.assertEqual(receipt["x-replay-complete"], "false", receipt)
        self.assertEqual(pub.publish_confirmed(room, "after")["x-seq"], "4",
                         "a purged destination's numbering goes on")


class OlderHistoryTest(ClusterCase):
    """x-replay: before:SEQ on another node than the publisher's: the same pages as on one
    node (history_test.OlderHistoryTest), read from Redis."""
    NODES = 2

    def test_pages_back_through_the_shared_history(self):
        a, b = self.nodes
        room = unique("/topic/cluster.older")
        pub = self.connect(a)
        for i in range(1, 41):
            pub.publish_confirmed(room, f"m{i}")
        reader = self.connect(b)
        pages, before = [], 41
        while True:
            got, receipt = reader.subscribe_replay(room, "older", f"before:{before}",
                                                   headers=[("x-replay-limit", "15")])
            pages.append(seqs_of(got))
            self.assertEqual((receipt["x-head-seq"], receipt["x-replay-complete"]),
                             ("40", "true"), receipt)
            if receipt["x-replay-older"] == "false":
                break
            before = seq_of(got[0])
        self.assertEqual(pages, [list(range(26, 41)), list(range(11, 26)), list(range(1, 11))])
        pub.publish_confirmed(room, "live")
        with self.assertRaises(TimeoutError):
            frame = reader.frame(0.5)
            self.fail(f"nothing live after a before: page, got {describe(frame)}")


class IdempotencyTest(ClusterCase):
    """x-idempotency-key across nodes: a backend whose node went away resends on another
    node and gets the first RECEIPT; every subscriber has the message once."""
    NODES = 2

    def test_a_retry_on_another_node_gets_the_first_receipt(self):
        a, b = self.nodes
        room = unique("/topic/cluster.idem")
        sub = self.connect(b)
        sub.subscribe_replay(room, "s")
        key = [("x-idempotency-key", "order-17")]
        first = self.connect(a).publish_confirmed(room, "order 17", headers=key)
        again = self.connect(b).publish_confirmed(room, "order 17", headers=key)
        self.assertEqual((again["x-seq"], again["x-epoch"], again.get("x-duplicate")),
                         (first["x-seq"], first["x-epoch"], "true"))
        self.assertNotIn("x-duplicate", first)
        self.assertEqual(sub.frame(scaled(5))[2], b"order 17")
        with self.assertRaises(TimeoutError):
            frame = sub.frame(0.3)
            self.fail(f"the retry was delivered: {describe(frame)}")
        history, _ = read_history(a.tcp_port, room)
        self.assertEqual(bodies_of(history), ["order 17"])


class NodeCrashTest(ClusterCase):
    PER_PUBLISHER = 200
    WINDOW = 20
    INTERVAL_S = 0.002  # ~0.4 s of publishing: the kill comes while the victim still sends

    def test_clients_of_a_killed_node_fail_over_without_losing_receipted_messages(self):
        dest = unique("/topic/cluster.crash")
        n0, n1, victim = self.nodes
        subs = [self.subscriber([n0], dest, "sub-0"), self.subscriber([n1], dest, "sub-1"),
                self.subscriber([victim, n1], dest, "sub-victim")]
        pubs = [self.publisher(nodes, dest, f"p{k}", self.PER_PUBLISHER, window=self.WINDOW,
                               interval=self.INTERVAL_S)
                for k, nodes in enumerate(([n0], [n1], [victim, n0]))]
        for t in subs + pubs:
            t.start()

        pubs[2].wait_sent(self.PER_PUBLISHER // 4)
        self.kill_node(2)
        self.join_publishers(pubs)
        self.assertEqual(pubs[2].failovers, 1, "the victim's publisher finished before the kill")

        _, epoch = self.check_receipts(pubs)
        history, receipt = read_history(n0.tcp_port, dest)
        head = int(receipt["x-head-seq"])
        self.assert_gap_free(seqs_of(history), 1, head, "history")
        self.assertEqual((receipt.get("x-replay-complete"), receipt.get("x-epoch")),
                         ("true", epoch), f"history RECEIPT {receipt}")
        seq_to_body = {seq_of(f): f[2].decode() for f in history}

        # Every receipted message is in the history, at the x-seq its RECEIPT named.
        for p in pubs:
            for body in p.confirmed:
                self.assertEqual(seq_to_body.get(p.seq_of(body)), body,
                                 f"receipted {body} not at its x-seq {p.seq_of(body)}")
        # Nothing else, and more than once only what was sent again without a RECEIPT.
        sent = {p.body(i) for p in pubs for i in range(p.count)}
        resent = set().union(*(p.resent for p in pubs))
        counts = collections.Counter(bodies_of(history))
        self.assertEqual(set(counts), sent, "the history holds exactly the bodies sent")
        for body, n in counts.items():
            allowed = 2 if body in resent else 1
            self.assertLessEqual(n, allowed, f"{body} stored {n} times (resent: {body in resent})")
        print(f"\ncluster_test: kill -9 with {len(resent)} SENDs resent, "
              f"{sum(n - 1 for n in counts.values())} stored twice, history {head}",
              file=sys.stderr)

        self.finish(subs, head)
        for s in subs:
            self.assert_view(s, 1, head, seq_to_body, epoch)
        resumed = subs[2]
        self.assertEqual(resumed.failovers, 1, "the victim's subscriber moved to another node")
        again = resumed.subscriptions[1]
        self.assertEqual(again.epoch, epoch)
        after = int(again.replay.split(":")[1])
        self.assert_replay_receipt(again, after + 1, True, epoch, "resumed subscriber")


class RedisRestartTest(ClusterCase):
    NODES = 2
    APPENDONLY = True
    BEFORE = 50

    def publish_before(self, node, dest):
        conn = self.connect(node)
        receipts = [conn.publish_confirmed(dest, f"before-{i}") for i in range(self.BEFORE)]
        self.assertEqual([int(r["x-seq"]) for r in receipts], list(range(1, self.BEFORE + 1)))
        epochs = {r.get("x-epoch") for r in receipts}
        self.assertEqual(len(epochs), 1, epochs)
        return epochs.pop()

    def restart_redis(self, node, dest):
        self.kill_redis_and_wait_unready()
        self.assert_send_refused(node, dest, "while-down")
        self.redis.restart()
        self.wait_all_readyz(200, RECONNECT_S)

    def test_keeps_receipted_history_and_sequence_across_a_redis_kill_9(self):
        dest = unique("/topic/cluster.aof")
        a, b = self.nodes
        epoch = self.publish_before(a, dest)
        self.restart_redis(a, dest)

        history, receipt = read_history(b.tcp_port, dest)
        head = int(receipt["x-head-seq"])
        self.assertEqual(bodies_of(history)[:self.BEFORE],
                         [f"before-{i}" for i in range(self.BEFORE)],
                         f"receipted messages lost with Redis's restart; RECEIPT {receipt}\n"
                         f"{self.logs()}")
        self.assert_gap_free(seqs_of(history), 1, head, "history after the restart")
        self.assertEqual(receipt.get("x-epoch"), epoch, f"the epoch survives an AOF restart")

        for k, node in enumerate((b, a)):
            r = self.connect(node).publish_confirmed(dest, f"after-{k}")
            self.assertEqual((r.get("x-seq"), r.get("x-epoch")), (str(head + k + 1), epoch),
                             f"the sequence goes on at head+1 on node-{1 - k}: RECEIPT {r}")

    def test_a_subscriber_keeps_receiving_across_a_redis_restart(self):
        dest = unique("/topic/cluster.aof.live")
        a, b = self.nodes
        sub = self.subscriber([b], dest, "across-restart")
        sub.start()
        epoch = self.publish_before(a, dest)
        self.restart_redis(a, dest)
        conn = self.connect(a)
        after = [conn.publish_confirmed(dest, f"after-{i}") for i in range(10)]
        last = int(after[-1]["x-seq"])
        history, _ = read_history(a.tcp_port, dest)
        seq_to_body = {seq_of(f): f[2].decode() for f in history}
        self.finish([sub], last)
        self.assert_view(sub, 1, last, seq_to_body, epoch)


class RedisPausedTest(ClusterCase):
    """A Redis that stops answering without closing anything (SIGSTOP: paused, swapping, a
    network that drops silently) is given up on after command_timeout_ms: the SEND waiting on
    it gets an ERROR, never a RECEIPT, and the node is ready again once Redis answers."""
    NODES = 1

    def test_a_silent_redis_fails_the_waiting_send_and_the_node_recovers(self):
        dest = unique("/topic/cluster.paused")
        node = self.nodes[0]
        conn = self.connect(node)
        self.assertEqual(conn.publish_confirmed(dest, "before")["x-seq"], "1")
        self.redis.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            conn.publish(dest, "while-paused", receipt="paused")
            frame = conn.frame(NOTICE_OUTAGE_S)
            took = time.monotonic() - started
            self.assertEqual(frame[0], "ERROR", describe(frame))
            self.assertEqual(frame[1].get("receipt-id"), "paused", describe(frame))
            self.assertGreaterEqual(took, COMMAND_TIMEOUT_MS / 1000 * 0.9,
                                    "given up on before the command timeout")
            self.wait_readyz(node, 503, NOTICE_OUTAGE_S)
            self.assertIn("no reply for", node.log())
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)
        self.wait_readyz(node, 200, RECONNECT_S)
        r = self.connect(node).publish_confirmed(dest, "after")
        # The paused SEND may or may not have been stored before Redis stopped: what the
        # ERROR says ("the connection to Redis was closed"), and why a resend may duplicate.
        self.assertIn(r["x-seq"], ("2", "3"), r)


class RedisDataLossTest(ClusterCase):
    NODES = 2

    def test_an_emptied_redis_starts_a_new_epoch_and_old_positions_are_incomplete(self):
        dest = unique("/topic/cluster.lost")
        a, b = self.nodes
        pub = self.connect(a)
        old = [pub.publish_confirmed(dest, f"old-{i}") for i in range(5)]
        old_epoch = old[0]["x-epoch"]
        self.assertEqual([r["x-seq"] for r in old], ["1", "2", "3", "4", "5"])

        self.kill_redis_and_wait_unready()
        self.redis.restart(empty=True)
        self.wait_all_readyz(200, RECONNECT_S)

        r = self.connect(a).publish_confirmed(dest, "new-1")
        new_epoch = r.get("x-epoch")
        self.assertEqual(r.get("x-seq"), "1", f"a new epoch numbers from 1: RECEIPT {r}")
        self.assertTrue(new_epoch, f"RECEIPT {r}")
        self.assertNotEqual(new_epoch, old_epoch, "Redis lost the history: a new epoch")

        # after:5 in the old epoch: that position means nothing now; the new history from
        # its start, marked incomplete.
        sub = self.connect(b)
        replayed, receipt = subscribe_resuming(sub, dest, "resume", "after:5", old_epoch)
        ctx = f"after:5 x-epoch {old_epoch}: RECEIPT {receipt}, replayed {seqs_of(replayed)}"
        self.assertEqual(receipt.get("x-replay-complete"), "false", ctx)
        self.assertEqual(receipt.get("x-epoch"), new_epoch, ctx)
        self.assertEqual((seqs_of(replayed), bodies_of(replayed)), ([1], ["new-1"]), ctx)

        r = self.connect(a).publish_confirmed(dest, "new-2")
        live = sub.frame(scaled(10))
        self.assertEqual((live[0], live[1].get("x-seq"), live[1].get("x-epoch"), live[2]),
                         ("MESSAGE", "2", new_epoch, b"new-2"), describe(live))


class ReadinessTest(ClusterCase):
    NODES = 1

    def test_readyz_is_503_while_redis_is_down_and_200_after_it_is_back(self):
        node = self.nodes[0]
        self.assertEqual(readyz(node)[0], 200)
        self.assertEqual(metric(node, "stompd_store_ready"), 1)
        self.kill_redis_and_wait_unready()
        self.assertEqual(metric(node, "stompd_store_ready"), 0)
        self.assert_send_refused(node, unique("/topic/cluster.ready.down"), "refused")
        self.assertGreaterEqual(metric(node, "stompd_store_failures_total"), 1)
        self.redis.restart()
        self.wait_readyz(node, 200, RECONNECT_S)
        self.assertEqual(metric(node, "stompd_store_ready"), 1)
        self.assertEqual(metric(node, "stompd_store_reconnects_total"), 1)
        r = self.connect(node).publish_confirmed(unique("/topic/cluster.ready"), "m")
        self.assertEqual(r.get("x-seq"), "1", f"RECEIPT {r}")

    def test_redis_flag_overrides_the_configured_addresses(self):
        nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
        node = self.start_node("node-override", addresses=[nobody])  # waits for /readyz 200
        r = self.connect(node).publish_confirmed(unique("/topic/cluster.override"), "m")
        self.assertEqual(r.get("x-seq"), "1", f"RECEIPT {r}")


if __name__ == "__main__":
    unittest.main()
