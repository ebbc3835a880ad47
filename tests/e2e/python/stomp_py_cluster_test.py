"""A chat room on two stompd nodes sharing history through one Redis, driven by stomp.py
(Debian's python3-stomp, 8.x) over TCP: the Python half of "stomp.js and stomp.py end to end
against two nodes" (tests/e2e/stompjs/cluster.test.mjs is the stomp.js half;
cluster_test.py covers the cluster in raw STOMP).

Client A is on node 1 and client B on node 2, in the same room. Both publish at once; both
see every message exactly once, in the same x-seq order, in one x-epoch. Then B leaves, A
goes on talking, and B comes back on the other node (node 1) with `x-replay: after:<last
x-seq B saw>` and the `x-epoch` it saw: exactly the messages B missed, flagged x-replayed,
before the SUBSCRIBE's RECEIPT, then live ones. And presence (PresenceTest): alice on node 1
and bob on node 2 and his phone on node 1, counted once each, joins and leaves on both nodes.

Each test starts its own redis-server on a free loopback port (redis_support.RedisServer);
it fails, naming scripts/install-deps test, when there is none. Every wait has a deadline
(scaled by STOMPD_E2E_TIME_SCALE). Run with /usr/bin/python3. Not named test_*.py: CTest runs
it as its own test (e2e_stomp_py_cluster).
"""

import threading
import time
import unittest
import uuid

try:
    import stomp
except ImportError as e:  # a clear message instead of a bare traceback
    raise ImportError("stomp.py is missing: install Debian's python3-stomp (scripts/install-deps "
                      "test) and run with /usr/bin/python3") from e

from redis_support import RedisServer
from stomp_py_support import Collector
from stompd_harness import Broker, pbkdf2_hash, readyz, scaled, stop_all, unique

PER_CLIENT = 4  # messages each of A and B publishes while both are in the room
MISSED = 3      # messages A publishes while B is away
SUB_ID = "room"


def describe(frame):
    return f"{frame.cmd} {frame.headers} {frame.body!r}"


def seqs(frames):
    return [int(f.headers["x-seq"]) for f in frames]


def bodies(frames):
    return [f.body for f in frames]


class RoomListener(Collector):
    """Collector (ERRORs, disconnects) plus every MESSAGE and RECEIPT in the order stomp.py
    handed them over, so a test can tell which MESSAGEs came before a SUBSCRIBE's RECEIPT."""

    def __init__(self):
        super().__init__()
        self.cond = threading.Condition()
        self.connected = False
        self.frames = []  # ("MESSAGE" | "RECEIPT", frame), in arrival order

    def on_connected(self, frame):
        with self.cond:
            self.connected = True
            self.cond.notify_all()

    def on_message(self, frame):
        with self.cond:
            self.frames.append(("MESSAGE", frame))
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.frames.append(("RECEIPT", frame))
            self.cond.notify_all()

    def on_error(self, frame):
        super().on_error(frame)
        with self.cond:
            self.cond.notify_all()

    def on_disconnected(self):
        super().on_disconnected()
        with self.cond:
            self.cond.notify_all()

    def _wait(self, predicate, timeout, what):
        with self.cond:
            if not self.cond.wait_for(lambda: predicate() or not self.errors.empty(), timeout):
                raise AssertionError(f"no {what} within {timeout:.1f} s; got "
                                     f"{[(k, f.headers) for k, f in self.frames]}")
            if not predicate():
                raise AssertionError(f"ERROR instead of {what}: {describe(self.errors.get())}")

    def received(self):
        """Every MESSAGE so far, in arrival order."""
        with self.cond:
            return [f for kind, f in self.frames if kind == "MESSAGE"]

    def wait_connected(self, timeout=None):
        self._wait(lambda: self.connected, scaled(10) if timeout is None else timeout,
                   "CONNECTED")

    def wait_messages(self, n, timeout=None):
        """The first n MESSAGEs this connection got, once there are that many."""
        self._wait(lambda: len(self.received()) >= n, scaled(10) if timeout is None else timeout,
                   f"{n} MESSAGEs")
        return self.received()[:n]

    def wait_receipts(self, receipt_ids, timeout=None):
        """receipt id -> (RECEIPT frame, how many MESSAGEs came before it)."""
        wanted = set(receipt_ids)

        def found():
            out, before = {}, 0
            for kind, f in self.frames:
                if kind == "MESSAGE":
                    before += 1
                elif f.headers.get("receipt-id") in wanted:
                    out[f.headers["receipt-id"]] = (f, before)
            return out

        self._wait(lambda: set(found()) == wanted, scaled(10) if timeout is None else timeout,
                   f"RECEIPTs {sorted(wanted)}")
        return found()


class TwoNodesCase(unittest.TestCase):
    """Two nodes on one Redis, each with --redis (and CONFIG). A node that does not stop with
    exit code 0 on SIGTERM, or whose sanitizer build reports anything, fails the test."""

    CONFIG = {}

    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.cleanup)  # last: the nodes stop while Redis is still up
        self.nodes = []
        self.addCleanup(self.stop_nodes)
        for name in ("node-1", "node-2"):
            self.start_node(name)
        self.dest = unique("/topic/room")

    def start_node(self, name):
        node = Broker.start(config={"node_name": name, **self.CONFIG},
                            extra_args=["--redis", self.redis.address])
        self.nodes.append(node)
        deadline = time.monotonic() + scaled(10)
        while True:
            got = readyz(node)
            if got[0] == 200 and got[1].strip() == "ready":
                return node
            if time.monotonic() > deadline:
                self.fail(f"{name}: /readyz still {got} after {scaled(10):.0f} s\n{node.log()}\n"
                          f"{self.redis.log()}")
            time.sleep(0.05)  # polling a state that changes on the node's own timers

    def stop_nodes(self):
        stop_all(self.nodes)

    def logs(self):
        return "\n".join([f"=== node-{k + 1} ===\n{n.log()}" for k, n in enumerate(self.nodes)]
                         + [self.redis.log()])

    # --- clients ---

    def connect(self, node, user=None):
        conn = stomp.Connection12([("127.0.0.1", node.tcp_port)], heartbeats=(0, 0),
                                  timeout=scaled(5), reconnect_attempts_max=1)
        listener = RoomListener()
        conn.set_listener("room", listener)
        self.addCleanup(self.disconnect_quietly, conn)
        credentials = {"username": user, "passcode": user + "-pw"} if user else {}
        conn.connect(wait=False, **credentials)  # waited for below, with a deadline
        listener.wait_connected()
        return conn, listener

    @staticmethod
    def disconnect_quietly(conn):
        try:
            if conn.is_connected():
                conn.disconnect()
        except Exception:
            pass

    def subscribe(self, conn, listener, **headers):
        """SUBSCRIBE to the room up to its RECEIPT: (MESSAGEs before it, RECEIPT frame)."""
        rid = f"sub-{uuid.uuid4().hex[:8]}"
        skip = len(listener.received())
        conn.subscribe(self.dest, id=SUB_ID, ack="auto", headers=dict(headers, receipt=rid))
        receipt, before = listener.wait_receipts([rid])[rid]
        return listener.received()[skip:before], receipt

    def publish(self, conn, listener, body_list):
        """SENDs every body with a receipt without waiting in between, then waits for all the
        RECEIPTs: body -> RECEIPT headers."""
        rids = {}
        for body in body_list:
            rid = f"pub-{uuid.uuid4().hex[:8]}"
            rids[rid] = body
            conn.send(self.dest, body, content_type="text/plain", headers={"receipt": rid})
        got = listener.wait_receipts(rids)
        return {body: got[rid][0].headers for rid, body in rids.items()}



class StompPyClusterTest(TwoNodesCase):
    """The chat room: both clients talking at once, and one resuming on the other node."""

    def assert_live(self, frame, seq, body, epoch, who):
        what = f"{who}: {describe(frame)}"
        self.assertEqual((frame.headers.get("x-seq"), frame.body, frame.headers.get("x-epoch"),
                          frame.headers.get("subscription"), frame.headers.get("destination")),
                         (str(seq), body, epoch, SUB_ID, self.dest), what)
        self.assertNotIn("x-replayed", frame.headers, f"a live frame is not flagged: {what}")
        self.assertTrue(frame.headers.get("message-id"), f"message-id: {what}")

    def chat(self):
        """A on node 1 and B on node 2 subscribe (to the RECEIPT) and publish PER_CLIENT
        messages each, at the same time. Returns the connections and listeners, what each saw,
        x-seq -> body from the SEND RECEIPTs, and the epoch."""
        node1, node2 = self.nodes
        a, a_l = self.connect(node1)
        b, b_l = self.connect(node2)
        for who, conn, listener in (("A", a, a_l), ("B", b, b_l)):
            replayed, receipt = self.subscribe(conn, listener)
            self.assertEqual(replayed, [], f"{who}: no x-replay, live only; RECEIPT "
                                           f"{receipt.headers}")
        results, errors = {}, {}

        def talk(who, conn, listener):
            try:
                results[who] = self.publish(conn, listener,
                                            [f"{who} says {i}" for i in range(1, PER_CLIENT + 1)])
            except Exception as e:  # reported below, with the logs
                errors[who] = e

        threads = [threading.Thread(target=talk, args=args, daemon=True)
                   for args in (("A", a, a_l), ("B", b, b_l))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(scaled(20))
            self.assertFalse(t.is_alive(), f"a publisher did not finish in time\n{self.logs()}")
        self.assertEqual(errors, {}, f"publishing failed\n{self.logs()}")

        total = 2 * PER_CLIENT
        by_seq, epochs = {}, set()
        for confirmed in results.values():
            for body, r in confirmed.items():
                self.assertTrue(r.get("x-seq") and r.get("x-epoch"),
                                f"SEND RECEIPT carries x-seq and x-epoch: {r}")
                seq = int(r["x-seq"])
                self.assertNotIn(seq, by_seq, f"x-seq {seq} given to {by_seq.get(seq)} and {body}")
                by_seq[seq] = body
                epochs.add(r["x-epoch"])
        self.assertEqual(sorted(by_seq), list(range(1, total + 1)), "RECEIPTs give x-seq 1..total")
        self.assertEqual(len(epochs), 1, f"one epoch: {epochs}")
        try:
            seen_a = a_l.wait_messages(total)
            seen_b = b_l.wait_messages(total)
        except AssertionError as e:
            self.fail(f"{e}\n{self.logs()}")
        return (a, a_l, b, b_l), seen_a, seen_b, by_seq, epochs.pop()

    # --- tests ---

    def test_delivers_every_message_once_in_one_x_seq_order_to_clients_on_both_nodes(self):
        (a, a_l, _, b_l), seen_a, seen_b, by_seq, epoch = self.chat()
        total = 2 * PER_CLIENT
        for who, seen in (("A on node 1", seen_a), ("B on node 2", seen_b)):
            self.assertEqual(seqs(seen), list(range(1, total + 1)),
                             f"{who}: every x-seq once, in order")
            for m in seen:
                seq = int(m.headers["x-seq"])
                self.assert_live(m, seq, by_seq[seq], epoch, who)
            self.assertEqual(len({m.headers["message-id"] for m in seen}), total,
                             f"{who}: message-ids unique")
        self.assertEqual(bodies(seen_a), bodies(seen_b), "A and B see the room in the same order")

        # One copy each: the next confirmed message is the next thing either of them gets.
        self.publish(a, a_l, ["last"])
        for who, listener in (("A", a_l), ("B", b_l)):
            got = listener.wait_messages(total + 1)
            self.assert_live(got[-1], total + 1, "last", epoch, who)
            self.assertEqual(len(listener.received()), total + 1, f"{who}: nothing after 'last'")

    def test_resumes_on_the_other_node_after_the_last_seen_x_seq_and_its_epoch(self):
        (a, a_l, b, b_l), _, seen_b, _, epoch = self.chat()
        total = 2 * PER_CLIENT
        last_seen = int(seen_b[-1].headers["x-seq"])
        self.assertEqual((last_seen, seen_b[-1].headers.get("x-epoch")), (total, epoch))

        # B leaves (DISCONNECT, to its RECEIPT), and A goes on talking.
        b.disconnect()
        self.assertTrue(b_l.wait_disconnected(), "B still connected after DISCONNECT")
        missed = [f"while B was away {i}" for i in range(1, MISSED + 1)]
        confirmed = self.publish(a, a_l, missed)
        self.assertEqual([confirmed[m]["x-seq"] for m in missed],
                         [str(s) for s in range(total + 1, total + MISSED + 1)],
                         f"SEND RECEIPTs {confirmed}")
        for i, m in enumerate(a_l.wait_messages(total + MISSED)[total:]):
            self.assert_live(m, total + 1 + i, missed[i], epoch, "A")

        # B comes back on node 1, the other node, from where it left off.
        back, back_l = self.connect(self.nodes[0])
        replayed, receipt = self.subscribe(back, back_l, **{"x-replay": f"after:{last_seen}",
                                                            "x-epoch": epoch})
        r = receipt.headers
        ctx = f"RECEIPT {r}, replayed {[(f.headers, f.body) for f in replayed]}"
        self.assertEqual(seqs(replayed), list(range(last_seen + 1, last_seen + MISSED + 1)),
                         f"exactly the missed ones before the RECEIPT: {ctx}\n{self.logs()}")
        self.assertEqual(bodies(replayed), missed, ctx)
        for m in replayed:
            self.assertEqual((m.headers.get("x-replayed"), m.headers.get("x-epoch"),
                              m.headers.get("subscription")), ("true", epoch, SUB_ID),
                             describe(m))
        self.assertEqual((r.get("x-replay-count"), r.get("x-head-seq"),
                          r.get("x-replay-complete"), r.get("x-epoch")),
                         (str(MISSED), str(total + MISSED), "true", epoch), ctx)

        # Then live: A's next message reaches both, B once, right after the replay.
        welcome = total + MISSED + 1
        self.publish(a, a_l, ["welcome back"])
        self.assert_live(back_l.wait_messages(MISSED + 1)[-1], welcome, "welcome back", epoch,
                         "B back on node 1")
        self.assert_live(a_l.wait_messages(welcome)[-1], welcome, "welcome back", epoch, "A")
        # And B's own message, sent on node 1 now, reaches A too.
        self.publish(back, back_l, ["thanks"])
        self.assert_live(back_l.wait_messages(MISSED + 2)[-1], welcome + 1, "thanks", epoch,
                         "B back on node 1")
        self.assert_live(a_l.wait_messages(welcome + 1)[-1], welcome + 1, "thanks", epoch, "A")
        self.assertEqual(len(back_l.received()), MISSED + 2,
                         "B: the missed ones, then the two live ones, nothing else")
        self.assertEqual(len(a_l.received()), welcome + 1, "A: nothing else")


class PresenceTest(TwoNodesCase):
    """x-presence through stomp.py: alice on node 1 and bob on node 2 (and on his phone on
    node 1) are counted once each; both nodes' subscribers get the joins and the leave."""

    USERS = ("alice", "bob")
    CONFIG = {"auth": {
        "anonymous": False,
        "users": [{"name": n, "passcode": f'"{pbkdf2_hash(n + "-pw")}"'} for n in USERS],
        "rules": [{"users": list(USERS), "subscribe": ["/topic/room.**"],
                   "send": ["/topic/room.**"]}],
    }}

    def event(self, listener, k):
        """The k-th MESSAGE (from 1), which must be a presence event: (event, user, count)."""
        m = listener.wait_messages(k)[k - 1]
        self.assertNotIn("x-seq", m.headers, f"presence is not journaled: {describe(m)}")
        return (m.headers.get("x-presence"), m.headers.get("x-presence-user"),
                m.headers.get("x-presence-count"))

    def test_counts_users_once_across_nodes_and_both_nodes_see_joins_and_leaves(self):
        node1, node2 = self.nodes
        alice, alice_l = self.connect(node1, "alice")
        _, receipt = self.subscribe(alice, alice_l, **{"x-presence": "true"})
        self.assertEqual(receipt.headers.get("x-presence-count"), "1", describe(receipt))
        self.assertEqual(self.event(alice_l, 1), ("join", "alice", "1"))
        bob, bob_l = self.connect(node2, "bob")
        _, receipt = self.subscribe(bob, bob_l, **{"x-presence": "true"})
        self.assertEqual(receipt.headers.get("x-presence-count"), "2", describe(receipt))
        self.assertEqual(self.event(alice_l, 2), ("join", "bob", "2"))
        self.assertEqual(self.event(bob_l, 1), ("join", "bob", "2"))
        phone, phone_l = self.connect(node1, "bob")
        self.subscribe(phone, phone_l)
        bob.disconnect()
        time.sleep(scaled(0.3))
        self.assertEqual(len(alice_l.received()), 2, "bob is still there, on his phone")
        phone.disconnect()
        self.assertEqual(self.event(alice_l, 3), ("leave", "bob", "1"))


if __name__ == "__main__":
    unittest.main()
