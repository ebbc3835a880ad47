"""x-presence across stompd nodes sharing one Redis: the real binaries, a redis-server of the
test's own (redis_support.RedisServer), raw STOMP 1.2 over TCP (history_support.Stomp).

What is checked:
  AcrossNodesTest  users subscribed on three nodes are counted once each, whichever node
                   asks: the RECEIPT's x-presence-count, the join and leave events every
                   node's subscribers get (their own join too, as on one node), and the
                   admin API of any node; a user on two nodes leaves with the last.
  NodeCrashTest    kill -9 of a node: each user only it had leaves, announced on the other
                   nodes, once cluster.redis.presence_timeout_ms passed; a user also on a
                   live node stays.

Every wait has a deadline (scaled by STOMPD_E2E_TIME_SCALE) and every thread ends by itself.
Run with /usr/bin/python3. Not named test_*.py: CTest runs it as its own test
(e2e_cluster_presence).
"""

import time
import unittest
import urllib.parse

from cluster_test import ClusterCase, admin
from history_support import Stomp, describe
from stompd_harness import pbkdf2_hash, scaled, unique

PRESENCE_TIMEOUT_MS = 1500
USERS = ("council", "alice", "bob")


class PresenceCase(ClusterCase):
    EXTRA_CONFIG = {"auth": {
        "anonymous": False,
        "users": [{"name": n, "passcode": f'"{pbkdf2_hash(n + "-pw")}"'} for n in USERS],
        "rules": [{"users": list(USERS), "subscribe": ["/topic/lost-item.**"],
                   "send": ["/topic/lost-item.**"]}],
    }}

    def redis_settings(self):
        return {"presence_timeout_ms": PRESENCE_TIMEOUT_MS}

    def setUp(self):
        super().setUp()
        self.room = unique("/topic/lost-item.cluster.room")

    def join(self, node, user, presence=True):
        """`user` subscribes to the room on `node`: (connection, RECEIPT headers)."""
        conn = Stomp.connected(node.tcp_port, login=user, passcode=user + "-pw")
        self.addCleanup(conn.close)
        headers = [("x-presence", "true")] if presence else []
        # Events may come before the RECEIPT (the user's own join does, as on one node).
        conn.early, receipt = conn.subscribe_replay(self.room, "room", headers=headers)
        return conn, receipt

    def event(self, conn, timeout=None):
        """The next MESSAGE, which must be a presence event: (event, user, count)."""
        if conn.early:
            frame = conn.early.pop(0)
        else:
            frame = conn.frame(scaled(5) if timeout is None else timeout)
        self.assertEqual(frame[0], "MESSAGE", describe(frame))
        headers = frame[1]
        self.assertIn("x-presence", headers, describe(frame))
        self.assertNotIn("x-seq", headers, "presence events are not journaled")
        self.assertEqual(headers["destination"], self.room)
        return headers["x-presence"], headers["x-presence-user"], int(headers["x-presence-count"])

    def no_event(self, conn, seconds=0.4):
        self.assertEqual(conn.early, [])
        with self.assertRaises(TimeoutError):
            frame = conn.frame(scaled(seconds))
            self.fail(f"expected nothing, got {describe(frame)}")

    def present(self, node):
        status, room = admin(node, "GET",
                             "/api/destinations/" + urllib.parse.quote(self.room, safe=""))
        self.assertEqual(status, 200, room)
        return room["present"], room["members"]


class AcrossNodesTest(PresenceCase):

    def test_users_count_once_across_nodes_and_every_node_sees_joins_and_leaves(self):
        n0, n1, n2 = self.nodes
        council, r = self.join(n0, "council")
        self.assertEqual(r["x-presence-count"], "1", r)
        self.assertEqual(self.event(council), ("join", "council", 1))  # its own, as on one node
        alice, r = self.join(n1, "alice")
        self.assertEqual(r["x-presence-count"], "2", r)
        self.assertEqual(self.event(council), ("join", "alice", 2))
        self.assertEqual(self.event(alice), ("join", "alice", 2))
        alice_phone, r = self.join(n2, "alice", presence=False)  # her phone, on another node
        self.assertNotIn("x-presence-count", r)
        self.no_event(council)  # alice was there already
        bob, _ = self.join(n2, "bob", presence=False)
        self.assertEqual(self.event(council), ("join", "bob", 3))
        self.assertEqual(self.event(alice), ("join", "bob", 3))
        # A message and the events share the room, each node's subscribers get both.
        bob.publish_confirmed(self.room, "hello")
        self.assertEqual(council.frame(scaled(5))[2], b"hello")
        for node in self.nodes:
            self.assertEqual(self.present(node), (3, ["alice", "bob", "council"]))
        alice.disconnect()
        self.no_event(council)  # her phone is still there, on n2
        alice_phone.disconnect()
        self.assertEqual(self.event(council), ("leave", "alice", 2))
        bob.disconnect()
        self.assertEqual(self.event(council), ("leave", "bob", 1))
        self.assertEqual(self.present(n1), (1, ["council"]))


class NodeCrashTest(PresenceCase):

    def test_the_users_of_a_killed_node_leave_after_the_presence_timeout(self):
        n0, victim, n2 = self.nodes
        council, _ = self.join(n0, "council")
        self.event(council)
        self.join(victim, "bob", presence=False)
        self.assertEqual(self.event(council), ("join", "bob", 2))
        self.join(victim, "alice", presence=False)
        self.assertEqual(self.event(council), ("join", "alice", 3))
        self.join(n2, "alice", presence=False)  # also on a node that lives
        self.no_event(council, 0.2)
        killed_at = time.monotonic()
        self.kill_node(1)
        self.assertEqual(self.event(council, PRESENCE_TIMEOUT_MS / 1000 + scaled(5)),
                         ("leave", "bob", 2))
        # Not before the node could have renewed (every third of the timeout) and failed to.
        self.assertGreaterEqual(time.monotonic() - killed_at, PRESENCE_TIMEOUT_MS / 1000 / 3)
        self.no_event(council, PRESENCE_TIMEOUT_MS / 1000)  # alice is still on n2
        self.assertEqual(self.present(n2), (2, ["alice", "council"]))


if __name__ == "__main__":
    unittest.main()
