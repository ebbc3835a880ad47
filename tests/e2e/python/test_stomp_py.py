"""stomp.py (Debian's python3-stomp, 8.x) against the real stompd over TCP.

Run with /usr/bin/python3: that is the interpreter Debian's python3-stomp is installed for.
"""

import http.client
import json
import os
import time
import unittest
import urllib.parse
import uuid

try:
    import stomp
except ImportError as e:  # a clear message instead of a bare traceback
    raise ImportError("stomp.py is missing: install Debian's python3-stomp (scripts/install-deps "
                      "test) and run with /usr/bin/python3") from e

from stomp_py_support import Collector
from stompd_harness import SHIPPED_CONFIG, Broker, RawStomp, pbkdf2_hash, scaled, unique


class BrokerTestCase(unittest.TestCase):
    """One broker per test class; CONFIG, if set, goes into its --config file, or CONFIG_FILE
    is used as it is."""

    CONFIG = None
    CONFIG_FILE = None

    @classmethod
    def setUpClass(cls):
        cls.broker = Broker.start(config=cls.CONFIG, config_file=cls.CONFIG_FILE)

    @classmethod
    def tearDownClass(cls):
        code, graceful = cls.broker.stop()
        log = cls.broker.log()
        cls.broker.cleanup()
        if not graceful or code != 0:
            raise AssertionError(f"stompd exit code {code}, graceful={graceful}\n{log}")

    def setUp(self):
        self.connections = []

    def tearDown(self):
        for conn in self.connections:
            try:
                if conn.is_connected():
                    conn.disconnect()
            except Exception:
                pass

    def connect(self, heartbeats=(0, 0), username=None, passcode=None, **kwargs):
        conn = stomp.Connection12([("127.0.0.1", self.broker.tcp_port)], heartbeats=heartbeats,
                                timeout=scaled(5), **kwargs)
        listener = Collector()
        conn.set_listener("collector", listener)
        conn.connect(username, passcode, wait=True)
        self.connections.append(conn)
        return conn, listener

    def send_confirmed(self, conn, listener, destination, body, **headers):
        receipt = uuid.uuid4().hex
        conn.send(destination, body, headers=dict(headers, receipt=receipt))
        listener.receipt(receipt)

    def subscribe_confirmed(self, conn, listener, destination, sub_id, ack="auto", **headers):
        receipt = uuid.uuid4().hex
        conn.subscribe(destination, id=sub_id, ack=ack, headers=dict(headers, receipt=receipt))
        listener.receipt(receipt)

    def fail_with_log(self, msg):
        self.fail(f"{msg}\n{self.broker.log()}")


class TopicTest(BrokerTestCase):

    def test_delivers_a_topic_message_with_its_headers(self):
        dest = unique("/topic/py.basic")
        sub, sub_l = self.connect()
        pub, pub_l = self.connect()
        self.subscribe_confirmed(sub, sub_l, dest, "s1")
        pub.send(dest, "hello from stomp.py", content_type="text/plain", headers={"x-answer": "42"})
        m = sub_l.message()
        self.assertEqual(m.body, "hello from stomp.py")
        self.assertEqual(m.headers["destination"], dest)
        self.assertEqual(m.headers["subscription"], "s1")
        self.assertEqual(m.headers["content-type"], "text/plain")
        self.assertEqual(m.headers["x-answer"], "42")
        self.assertIn("message-id", m.headers)
        self.assertNotIn("ack", m.headers, "no ack header for an auto subscription")

    def test_answers_receipts(self):
        conn, listener = self.connect()
        conn.send(unique("/topic/py.receipt"), "x", headers={"receipt": "r-42"})
        self.assertEqual(listener.receipt("r-42").headers["receipt-id"], "r-42")

    def test_unsubscribe_stops_delivery(self):
        dest = unique("/topic/py.unsub")
        conn, listener = self.connect()
        self.subscribe_confirmed(conn, listener, dest, "s")
        conn.unsubscribe("s", headers={"receipt": "u"})
        listener.receipt("u")
        self.send_confirmed(conn, listener, dest, "after")
        listener.no_message(scaled(0.3))


class OlderHistoryTest(BrokerTestCase):

    def test_loads_older_messages_page_by_page(self):
        dest = unique("/topic/py.older")
        conn, listener = self.connect()
        for i in range(1, 13):
            self.send_confirmed(conn, listener, dest, f"m{i}")
        pages, before = [], 13
        while True:
            receipt = uuid.uuid4().hex
            conn.subscribe(dest, id=f"older-{before}", headers={
                "x-replay": f"before:{before}", "x-replay-limit": "5", "receipt": receipt})
            done = listener.receipt(receipt)
            page = []
            while not listener.messages.empty():  # stomp.py queued them before the RECEIPT
                page.append(int(listener.messages.get().headers["x-seq"]))
            pages.append(page)
            self.assertEqual(done.headers["x-replay-count"], str(len(page)))
            if done.headers["x-replay-older"] == "false":
                break
            before = page[0]
        self.assertEqual(pages, [[8, 9, 10, 11, 12], [3, 4, 5, 6, 7], [1, 2]])
        self.send_confirmed(conn, listener, dest, "live")
        listener.no_message(scaled(0.3))


class IdempotencyTest(BrokerTestCase):

    def test_a_resend_with_the_same_key_gets_the_same_x_seq_and_is_delivered_once(self):
        dest = unique("/topic/py.idem")
        sub, sub_l = self.connect()
        self.subscribe_confirmed(sub, sub_l, dest, "s")
        conn, listener = self.connect()
        receipts = []
        for _ in range(2):
            rid = uuid.uuid4().hex
            conn.send(dest, "once", headers={"receipt": rid, "x-idempotency-key": "k-1"})
            receipts.append(listener.receipt(rid).headers)
        self.assertEqual(receipts[0]["x-seq"], receipts[1]["x-seq"])
        self.assertEqual(receipts[1].get("x-duplicate"), "true")
        self.assertEqual(sub_l.message().body, "once")
        sub_l.no_message(scaled(0.3))


class PresenceTest(BrokerTestCase):
    """x-presence: who is in a room, by user: the SUBSCRIBE's RECEIPT says how many, join and
    leave events come to those who asked, a user with two connections counts once and leaves
    with the last; it needs the subscribe grant like any subscription."""

    ROOM = "/topic/lost-item.42.room.7"
    CONFIG = {"auth": {
        "anonymous": False,
        "users": [{"name": n, "passcode": f'"{pbkdf2_hash(n + "-pw")}"'}
                  for n in ("council", "alice", "bob")],
        "rules": [{"users": ["council", "alice", "bob"], "subscribe": ["/topic/lost-item.**"],
                   "send": ["/topic/lost-item.**"]}],
    }}

    def join(self, user, presence=True):
        conn, listener = self.connect(username=user, passcode=user + "-pw")
        receipt = uuid.uuid4().hex
        headers = {"receipt": receipt}
        if presence:
            headers["x-presence"] = "true"
        conn.subscribe(self.ROOM, id="room", headers=headers)
        return conn, listener, listener.receipt(receipt).headers

    def event(self, listener):
        m = listener.message()
        self.assertNotIn("x-seq", m.headers, "presence events are not journaled")
        return (m.headers["x-presence"], m.headers["x-presence-user"],
                int(m.headers["x-presence-count"]))

    def test_counts_users_once_and_tells_who_joins_and_leaves(self):
        council, council_l, r = self.join("council")
        self.assertEqual(r["x-presence-count"], "1")
        self.assertEqual(self.event(council_l), ("join", "council", 1))  # its own
        alice, alice_l, r = self.join("alice")
        self.assertEqual(r["x-presence-count"], "2")
        self.assertEqual(self.event(council_l), ("join", "alice", 2))
        self.assertEqual(self.event(alice_l), ("join", "alice", 2))
        alice_phone, _, r = self.join("alice", presence=False)  # a second device
        self.assertNotIn("x-presence-count", r)
        council_l.no_message(scaled(0.3))  # alice was there already
        bob, bob_l, _ = self.join("bob", presence=False)  # bob does not ask for events
        self.assertEqual(self.event(council_l), ("join", "bob", 3))
        self.send_confirmed(council, council_l, self.ROOM, "hello")
        self.assertEqual(bob_l.message().body, "hello")
        bob_l.no_message(scaled(0.3))  # no presence events for him
        self.assertEqual(council_l.message().body, "hello")
        alice_l.message()
        # The admin API (and stompctl destination) shows who is there.
        conn = http.client.HTTPConnection("127.0.0.1", self.broker.admin_port, timeout=scaled(5))
        conn.request("GET", "/api/destinations/" + urllib.parse.quote(self.ROOM, safe=""))
        room = json.loads(conn.getresponse().read())
        conn.close()
        self.assertEqual((room["present"], room["members"]), (3, ["alice", "bob", "council"]))
        alice.disconnect()
        council_l.no_message(scaled(0.3))  # her phone is still there
        alice_phone.disconnect()
        self.assertEqual(self.event(council_l), ("leave", "alice", 2))

    def test_a_sender_cannot_fake_a_presence_event(self):
        council, council_l, _ = self.join("council")
        self.event(council_l)
        self.send_confirmed(council, council_l, self.ROOM, "fake",
                            **{"x-presence": "leave", "x-presence-user": "alice"})
        m = council_l.message()
        self.assertEqual(m.body, "fake")
        self.assertNotIn("x-presence", m.headers)


class LargeMessageTest(BrokerTestCase):

    def test_delivers_a_binary_body_of_exactly_max_body_bytes(self):
        dest = unique("/queue/py.large")
        body = bytes((i * 7) % 256 for i in range(1024 * 1024))  # default max_body_bytes, NULs too
        conn = stomp.Connection12([("127.0.0.1", self.broker.tcp_port)], auto_decode=False,
                                  timeout=scaled(5))
        listener = Collector()
        conn.set_listener("collector", listener)
        conn.connect(wait=True)
        self.connections.append(conn)
        self.subscribe_confirmed(conn, listener, dest, "s")
        conn.send(dest, body, content_type="application/octet-stream")
        m = listener.message(timeout=scaled(10))
        self.assertEqual(m.headers["content-length"], str(len(body)))
        self.assertEqual(m.body, body)

    def test_rejects_a_body_over_max_body_bytes(self):
        raw = RawStomp(self.broker.tcp_port)
        try:
            raw.send_frame("CONNECT", [("accept-version", "1.2"), ("host", "localhost")])
            self.assertEqual(raw.read_frame()[0], "CONNECTED")
            n = 1024 * 1024 + 1
            try:
                raw.send_frame("SEND", [("destination", "/queue/py.too-large"),
                                        ("content-length", str(n))], b"y" * n)
            except OSError:
                pass  # the broker may refuse the rest of the body; its ERROR must still arrive
            command, headers, _ = raw.read_frame(timeout=scaled(10))
            self.assertEqual(command, "ERROR", headers)
            self.assertIsNotNone(raw.wait_closed(scaled(5)), "connection left open after ERROR")
        finally:
            raw.close()


class Stomp11Test(BrokerTestCase):
    """STOMP 1.1: no ack header in MESSAGE; ACK/NACK name message-id and subscription."""

    def connect11(self):
        conn = stomp.Connection11([("127.0.0.1", self.broker.tcp_port)], timeout=scaled(5))
        listener = Collector()
        conn.set_listener("collector", listener)
        conn.connect(wait=True)
        self.connections.append(conn)
        return conn, listener

    def test_acks_and_nacks_by_message_id(self):
        dest = unique("/queue/py.v11")
        conn, listener = self.connect11()
        self.subscribe_confirmed(conn, listener, dest, "s", ack="client-individual")
        conn.send(dest, "one")
        m = listener.message()
        self.assertNotIn("ack", m.headers)
        conn.nack(m.headers["message-id"], "s")
        again = listener.message()
        self.assertEqual(again.body, "one")
        conn.ack(again.headers["message-id"], "s", receipt="a")
        listener.receipt("a")
        listener.no_message(scaled(0.3))


class QueueTest(BrokerTestCase):

    def test_holds_messages_until_a_consumer_subscribes(self):
        dest = unique("/queue/py.hold")
        pub, pub_l = self.connect()
        for i in range(3):
            self.send_confirmed(pub, pub_l, dest, f"m{i}")
        sub, sub_l = self.connect()
        sub.subscribe(dest, id="s")
        self.assertEqual([sub_l.message().body for _ in range(3)], ["m0", "m1", "m2"])

    def test_client_ack_is_cumulative(self):
        dest = unique("/queue/py.client")
        a, a_l = self.connect()
        self.subscribe_confirmed(a, a_l, dest, "s", ack="client")
        pub, pub_l = self.connect()
        for i in range(3):
            self.send_confirmed(pub, pub_l, dest, f"m{i}")
        got = [a_l.message() for _ in range(3)]
        self.assertEqual([m.body for m in got], ["m0", "m1", "m2"])
        for m in got:
            self.assertIn("ack", m.headers, "STOMP 1.2 MESSAGE in client mode carries ack")
        # Acking m1 acknowledges m0 and m1 (STOMP 1.2, SUBSCRIBE ack "client").
        a.ack(got[1].headers["ack"], receipt="ack1")
        a_l.receipt("ack1")
        a.disconnect()
        b, b_l = self.connect()
        b.subscribe(dest, id="s")
        self.assertEqual(b_l.message().body, "m2")
        b_l.no_message(scaled(0.3))

    def test_client_individual_ack_acknowledges_one_message(self):
        dest = unique("/queue/py.individual")
        a, a_l = self.connect()
        self.subscribe_confirmed(a, a_l, dest, "s", ack="client-individual")
        pub, pub_l = self.connect()
        for i in range(3):
            self.send_confirmed(pub, pub_l, dest, f"m{i}")
        got = [a_l.message() for _ in range(3)]
        a.ack(got[0].headers["ack"])
        a.ack(got[2].headers["ack"], receipt="acks")
        a_l.receipt("acks")
        a.disconnect()
        b, b_l = self.connect()
        b.subscribe(dest, id="s")
        self.assertEqual(b_l.message().body, "m1")
        b_l.no_message(scaled(0.3))

    def test_nack_redelivers(self):
        dest = unique("/queue/py.nack")
        a, a_l = self.connect()
        self.subscribe_confirmed(a, a_l, dest, "s", ack="client-individual")
        pub, pub_l = self.connect()
        self.send_confirmed(pub, pub_l, dest, "again")
        first = a_l.message()
        a.nack(first.headers["ack"], receipt="n")
        a_l.receipt("n")
        second = a_l.message()
        self.assertEqual(second.body, "again")
        a.ack(second.headers["ack"], receipt="a")
        a_l.receipt("a")
        a_l.no_message(scaled(0.3))

    def test_unacked_messages_go_to_another_consumer_on_disconnect(self):
        dest = unique("/queue/py.redeliver")
        a, a_l = self.connect()
        self.subscribe_confirmed(a, a_l, dest, "s", ack="client-individual")
        pub, pub_l = self.connect()
        self.send_confirmed(pub, pub_l, dest, "precious")
        self.assertEqual(a_l.message().body, "precious")
        b, b_l = self.connect()
        self.subscribe_confirmed(b, b_l, dest, "s", ack="client-individual")
        b_l.no_message(scaled(0.2))  # A still holds it
        a.disconnect()
        m = b_l.message()
        self.assertEqual(m.body, "precious")
        b.ack(m.headers["ack"])

    def test_unacked_messages_go_to_another_consumer_when_the_connection_drops(self):
        dest = unique("/queue/py.drop")
        a, a_l = self.connect()
        self.subscribe_confirmed(a, a_l, dest, "s", ack="client")
        b, b_l = self.connect()
        self.subscribe_confirmed(b, b_l, dest, "s", ack="client")
        pub, pub_l = self.connect()
        self.send_confirmed(pub, pub_l, dest, "first")   # round-robin: one each
        self.send_confirmed(pub, pub_l, dest, "second")
        got_a = a_l.message()
        got_b = b_l.message()
        self.assertEqual(sorted([got_a.body, got_b.body]), ["first", "second"])
        a.transport.disconnect_socket()  # a crash: no DISCONNECT, no UNSUBSCRIBE
        m = b_l.message()
        self.assertEqual(m.body, got_a.body)
        b.ack(m.headers["ack"])

    def test_unsubscribe_redelivers_unacked_messages(self):
        dest = unique("/queue/py.unsub")
        a, a_l = self.connect()
        self.subscribe_confirmed(a, a_l, dest, "s", ack="client")
        b, b_l = self.connect()
        pub, pub_l = self.connect()
        self.send_confirmed(pub, pub_l, dest, "held")
        self.assertEqual(a_l.message().body, "held")
        self.subscribe_confirmed(b, b_l, dest, "t", ack="auto")
        a.unsubscribe("s", headers={"receipt": "u"})
        a_l.receipt("u")
        self.assertEqual(b_l.message().body, "held")

    def test_prefetch_count_bounds_unacked_messages(self):
        dest = unique("/queue/py.prefetch")
        a, a_l = self.connect()
        self.subscribe_confirmed(a, a_l, dest, "s", ack="client-individual", **{"prefetch-count": "2"})
        pub, pub_l = self.connect()
        for i in range(5):
            self.send_confirmed(pub, pub_l, dest, f"m{i}")
        got = [a_l.message(), a_l.message()]
        self.assertEqual([m.body for m in got], ["m0", "m1"])
        a_l.no_message(scaled(0.3))  # the third waits for an ack
        a.ack(got[0].headers["ack"])
        self.assertEqual(a_l.message().body, "m2")
        a_l.no_message(scaled(0.3))

    def test_round_robin_between_consumers(self):
        dest = unique("/queue/py.rr")
        a, a_l = self.connect()
        b, b_l = self.connect()
        self.subscribe_confirmed(a, a_l, dest, "s")
        self.subscribe_confirmed(b, b_l, dest, "s")
        pub, pub_l = self.connect()
        for i in range(6):
            self.send_confirmed(pub, pub_l, dest, f"m{i}")
        got_a = [a_l.message().body for _ in range(3)]
        got_b = [b_l.message().body for _ in range(3)]
        self.assertEqual(sorted(got_a + got_b), [f"m{i}" for i in range(6)])
        a_l.no_message(scaled(0.2))
        b_l.no_message(0)


class TransactionTest(BrokerTestCase):

    def test_commit_delivers_sends_in_order(self):
        dest = unique("/queue/py.tx")
        sub, sub_l = self.connect()
        self.subscribe_confirmed(sub, sub_l, dest, "s")
        conn, listener = self.connect()
        tx = conn.begin()
        conn.send(dest, "one", transaction=tx)
        conn.send(dest, "two", transaction=tx)
        # A receipt for a later frame proves the broker processed the transactional SENDs.
        conn.send(unique("/topic/py.sync"), "", headers={"receipt": "sync"})
        listener.receipt("sync")
        sub_l.no_message(scaled(0.2))
        conn.commit(tx)
        self.assertEqual([sub_l.message().body, sub_l.message().body], ["one", "two"])

    def test_abort_discards_sends(self):
        dest = unique("/queue/py.abort")
        sub, sub_l = self.connect()
        self.subscribe_confirmed(sub, sub_l, dest, "s")
        conn, listener = self.connect()
        tx = conn.begin()
        conn.send(dest, "never", transaction=tx)
        conn.abort(tx)
        conn.send(dest, "after")
        self.assertEqual(sub_l.message().body, "after")
        sub_l.no_message(scaled(0.2))

    def test_ack_in_an_aborted_transaction_is_discarded(self):
        dest = unique("/queue/py.txack")
        a, a_l = self.connect()
        self.subscribe_confirmed(a, a_l, dest, "s", ack="client-individual")
        pub, pub_l = self.connect()
        self.send_confirmed(pub, pub_l, dest, "keep")
        m = a_l.message()
        tx = a.begin()
        a.ack(m.headers["ack"], transaction=tx)
        a.abort(tx)
        a.disconnect()
        b, b_l = self.connect()
        b.subscribe(dest, id="s")
        self.assertEqual(b_l.message().body, "keep")

    def test_ack_in_a_committed_transaction_takes_effect(self):
        dest = unique("/queue/py.txack2")
        a, a_l = self.connect()
        self.subscribe_confirmed(a, a_l, dest, "s", ack="client-individual")
        pub, pub_l = self.connect()
        self.send_confirmed(pub, pub_l, dest, "done")
        m = a_l.message()
        tx = a.begin()
        a.ack(m.headers["ack"], transaction=tx)
        a.commit(tx, headers={"receipt": "c"})
        a_l.receipt("c")
        a.disconnect()
        b, b_l = self.connect()
        self.subscribe_confirmed(b, b_l, dest, "s")
        b_l.no_message(scaled(0.3))

    def test_commit_of_an_unknown_transaction_is_an_error(self):
        conn, listener = self.connect()
        conn.commit("no-such-tx")
        err = listener.error()
        self.assertIn("message", err.headers)


class HeartbeatTest(BrokerTestCase):
    INTERVAL_MS = 200
    # The default 10 s offers: the client's own 200 ms is honoured, above a 100 ms floor.
    CONFIG = {"heartbeat": {"min_interval_ms": 100, "grace_factor": 2.0}}

    def test_stomp_py_heartbeats_keep_the_connection_alive(self):
        # heart_beat_receive_scale 2.0 instead of stomp.py's 1.5 leaves room for a busy
        # machine; the broker's own tolerance (grace_factor 2.0) is what is under test.
        conn, listener = self.connect(heartbeats=(self.INTERVAL_MS, self.INTERVAL_MS),
                                      heart_beat_receive_scale=2.0)
        time.sleep(10 * self.INTERVAL_MS / 1000)  # bounded: the point is to wait for heart-beats
        self.assertTrue(conn.is_connected(), self.broker.log())
        self.assertEqual(listener.heartbeat_timeouts, 0)
        self.assertGreaterEqual(listener.heartbeats, 5,
                                f"only {listener.heartbeats} heart-beats from the broker")
        dest = unique("/topic/py.hb")
        self.subscribe_confirmed(conn, listener, dest, "s")
        conn.send(dest, "alive")
        self.assertEqual(listener.message().body, "alive")

    def test_closes_a_silent_connection_after_interval_times_grace(self):
        raw = RawStomp(self.broker.tcp_port)
        try:
            raw.send_frame("CONNECT", [("accept-version", "1.2"), ("host", "localhost"),
                                       ("heart-beat", f"{self.INTERVAL_MS},{self.INTERVAL_MS}")])
            command, headers, _ = raw.read_frame()
            self.assertEqual(command, "CONNECTED")
            sx, sy = (int(v) for v in headers["heart-beat"].split(","))
            # Negotiated: the broker expects a beat every max(cx, sy) = 200 ms; silence past
            # 200 ms x 2.0 closes the connection.
            expected = max(self.INTERVAL_MS, sy) * 2.0 / 1000
            closed_after = raw.wait_closed(scaled(5))
            self.assertIsNotNone(closed_after, "the broker kept a silent connection open")
            self.assertGreaterEqual(closed_after, expected * 0.8,
                                    f"closed after {closed_after:.3f} s, before {expected} s")
            self.assertLessEqual(closed_after, expected + scaled(1.5),
                                 f"closed only after {closed_after:.3f} s")
            self.assertGreaterEqual(len(raw.heartbeats), 1, "the broker sent heart-beats meanwhile")
        finally:
            raw.close()

    def test_does_not_time_out_a_client_that_promised_no_heartbeats(self):
        raw = RawStomp(self.broker.tcp_port)
        try:
            raw.send_frame("CONNECT", [("accept-version", "1.2"), ("host", "localhost"),
                                       ("heart-beat", "0,0")])
            command, headers, _ = raw.read_frame()
            self.assertEqual(command, "CONNECTED")
            self.assertIsNone(raw.wait_closed(scaled(1.5)),
                              "closed although the client offered no heart-beats")
            self.assertEqual(raw.heartbeats, [], "heart-beats sent although the client wants none")
            raw.send_frame("DISCONNECT", [("receipt", "bye")])
            command, headers, _ = raw.read_frame()
            self.assertEqual((command, headers.get("receipt-id")), ("RECEIPT", "bye"))
        finally:
            raw.close()


class ShippedConfigTest(BrokerTestCase):
    """Issue 13: with the shipped development config (anonymous access on), wrong credentials
    got CONNECTED; and stomp.py's examples log in as guest/guest, as with RabbitMQ."""
    CONFIG_FILE = SHIPPED_CONFIG

    def test_guest_guest_connects_out_of_the_box(self):
        conn, listener = self.connect(username="guest", passcode="guest")
        dest = unique("/topic/py.guest")
        self.subscribe_confirmed(conn, listener, dest, "s")
        conn.send(dest, "hello")
        self.assertEqual(listener.message().body, "hello")

    def test_credentials_that_do_not_verify_are_refused(self):
        for login, passcode in (("nobody", "wrong"), ("guest", "wrong")):
            raw = RawStomp(self.broker.tcp_port)
            try:
                raw.send_frame("CONNECT", [("accept-version", "1.2"), ("host", "localhost"),
                                           ("login", login), ("passcode", passcode)])
                command, headers, _ = raw.read_frame()
                self.assertEqual((command, headers.get("message")), ("ERROR", "access refused"),
                                 f"{login}/{passcode}")
                self.assertIsNotNone(raw.wait_closed(scaled(5)), "the connection stayed open")
            finally:
                raw.close()

    def test_no_credentials_is_anonymous(self):
        conn, _ = self.connect()
        self.assertTrue(conn.is_connected())


class LimitsTest(BrokerTestCase):
    CONFIG = {"limits": {"connect_timeout_ms": 300, "max_frame_bytes": 8192}}

    def test_closes_a_connection_that_never_sends_connect(self):
        raw = RawStomp(self.broker.tcp_port)
        try:
            closed_after = raw.wait_closed(scaled(5))
            self.assertIsNotNone(closed_after, "connection without CONNECT left open")
            self.assertGreaterEqual(closed_after, 0.2)
        finally:
            raw.close()

    def test_rejects_a_frame_over_max_frame_bytes(self):
        raw = RawStomp(self.broker.tcp_port)
        try:
            raw.send_frame("CONNECT", [("accept-version", "1.2"), ("host", "localhost")])
            self.assertEqual(raw.read_frame()[0], "CONNECTED")
            raw.send_frame("SEND", [("destination", "/topic/py.big"), ("receipt", "big"),
                                    ("content-length", "20000")], b"x" * 20000)
            command, headers, _ = raw.read_frame()
            self.assertEqual(command, "ERROR", headers)
            self.assertIn("message", headers)
            self.assertIsNotNone(raw.wait_closed(scaled(5)), "connection left open after ERROR")
        finally:
            raw.close()


class SlowConsumerTest(BrokerTestCase):
    MAX_QUEUED_BYTES = 256 * 1024
    CONFIG = {"limits": {"max_queued_bytes": MAX_QUEUED_BYTES}}

    def test_closes_a_subscriber_that_stops_reading_without_blocking_the_publisher(self):
        dest = unique("/topic/py.slow")
        slow = RawStomp(self.broker.tcp_port, rcvbuf=4096)
        try:
            slow.send_frame("CONNECT", [("accept-version", "1.2"), ("host", "localhost")])
            self.assertEqual(slow.read_frame()[0], "CONNECTED")
            slow.send_frame("SUBSCRIBE", [("id", "s"), ("destination", dest), ("receipt", "r")])
            self.assertEqual(slow.read_frame()[1].get("receipt-id"), "r")
            # From here on the subscriber reads nothing. 12 MiB is more than the kernel's socket
            # buffers on both ends can hide, so the broker's own queue must hit its bound.
            pub, pub_l = self.connect()
            body = "x" * 4096
            started = time.monotonic()
            for i in range(3072):
                pub.send(dest, body, headers={"receipt": f"p{i}"} if i % 256 == 255 else None)
            pub_l.receipt("p3071")
            took = time.monotonic() - started
            self.assertLess(took, scaled(30), f"publishing took {took:.1f} s")
            # Now drain: the broker must have cut the subscriber off instead of queueing 12 MiB.
            got = 0
            try:
                while True:
                    command, _, _ = slow.read_frame(timeout=scaled(5))
                    got += command == "MESSAGE"
            except ConnectionError:
                pass
            except TimeoutError:
                self.fail_with_log(f"slow subscriber still open after {got} messages")
            self.assertLess(got, 3072, "every message was queued for the slow subscriber")
        finally:
            slow.close()
        # The broker still serves everybody else.
        conn, listener = self.connect()
        self.subscribe_confirmed(conn, listener, dest, "s")
        conn.send(dest, "after")
        self.assertEqual(listener.message().body, "after")


if __name__ == "__main__":
    unittest.main()
