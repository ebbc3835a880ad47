"""The admin HTTP API, /metrics and stompctl against the real stompd (docs/OPERATING.md).

stompd runs with `--admin 127.0.0.1:0` and an admin token from its config file; stomp.py
clients over TCP make the traffic (topic and queue subscriptions, journaled messages). Every
endpoint is checked over HTTP (urllib), and every stompctl command in both its table and its
--json form, with the exit statuses scripts rely on.

Needs STOMPD_BIN and STOMPCTL_BIN (CTest sets both), Debian's python3-stomp and
python3-prometheus-client, run with /usr/bin/python3. Not named test_*.py: CTest runs it as
its own test (e2e_admin_py).
"""

import base64
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

try:
    import stomp
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:
    raise ImportError("stomp.py or prometheus_client is missing: install Debian's python3-stomp "
                      "and python3-prometheus-client (scripts/install-deps test) and run with "
                      "/usr/bin/python3") from e

from history_support import Stomp
from stomp_py_support import Collector
from stompd_harness import Broker, sanitizer_reports, scaled, unique

TOKEN = "adm-" + uuid.uuid4().hex  # never appears in the broker's log
JWT_SECRET = "e2e-admin-jwt-secret-" + "x" * 32

def stompctl_binary():
    binary = os.environ.get("STOMPCTL_BIN")
    if not binary:
        raise RuntimeError("STOMPCTL_BIN is not set: run this test through CTest, or set it to "
                           "the stompctl binary (e.g. build/asan/broker/stompctl)")
    return os.path.abspath(binary)


def start_broker(config):
    """The broker with its admin listener on a free port (Broker.admin_port waits for it)."""
    broker = Broker.start(config=config, admin="127.0.0.1:0")
    try:
        broker.admin_port
    except Exception:
        broker.stop()
        broker.cleanup()
        raise
    return broker


def jwt_hs256(claims, secret=JWT_SECRET):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"HTTP {self.status} {self.body[:300]!r}"


class AdminCase(unittest.TestCase):
    """One broker for the class; each test uses destinations of its own."""

    CONFIG = {"admin": {"token": TOKEN}}

    @classmethod
    def setUpClass(cls):
        cls.broker = start_broker(cls.CONFIG)
        cls.base = f"http://127.0.0.1:{cls.broker.admin_port}"
        cls.conns = []

    @classmethod
    def tearDownClass(cls):
        for c in cls.conns:
            try:
                c.disconnect()
            except Exception:
                pass
        code, graceful = cls.broker.stop()
        log = cls.broker.log()
        cls.broker.cleanup()
        reports = sanitizer_reports(log)
        if reports or not graceful or code != 0:
            raise AssertionError(f"stompd exit code {code}, graceful={graceful}, sanitizer "
                                 f"reports {reports}\n{log}")
        if TOKEN in log:
            raise AssertionError("the admin token appears in the broker's log")

    # --- clients ---

    def api(self, method, path, token=TOKEN, body=None, content_type=None, headers=None):
        req = urllib.request.Request(self.base + path, method=method, data=body)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if content_type:
            req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=scaled(10)) as res:
                return Reply(res.status, res.headers, res.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            return Reply(e.code, e.headers, e.read().decode("utf-8"))

    def get_json(self, path, status=200):
        reply = self.api("GET", path)
        self.assertEqual(reply.status, status, reply)
        self.assertEqual(reply.headers.get("Content-Type"), "application/json")
        return reply.json()

    def ctl(self, *args, token=TOKEN, url=None, stdin=None, status=0, one_line=True):
        env = dict(os.environ)
        env["STOMPCTL_URL"] = url or self.base
        env.pop("STOMPCTL_TOKEN", None)
        if token:
            env["STOMPCTL_TOKEN"] = token
        run = subprocess.run([stompctl_binary(), *args], input=stdin, capture_output=True,
                             env=env, timeout=scaled(30))
        out, err = run.stdout.decode("utf-8"), run.stderr.decode("utf-8")
        self.assertEqual(run.returncode, status,
                         f"stompctl {' '.join(args)}: exit {run.returncode}\n"
                         f"stdout: {out}\nstderr: {err}")
        if status != 0 and one_line:
            self.assertEqual(len(err.strip().splitlines()), 1, f"one-line error: {err!r}")
            self.assertTrue(err.startswith("stompctl: "), err)
        return out, err

    def stomp(self):
        conn = stomp.Connection([("127.0.0.1", self.broker.tcp_port)], heartbeats=(0, 0),
                                auto_decode=False)
        listener = Collector()
        conn.set_listener("collector", listener)
        conn.connect(wait=True)
        self.conns.append(conn)
        return conn, listener

    def subscribe(self, conn, listener, destination, **kwargs):
        """SUBSCRIBE and wait for its RECEIPT, so the admin API already sees it."""
        receipt = f"sub-{uuid.uuid4().hex[:8]}"
        conn.subscribe(destination, headers={"receipt": receipt}, **kwargs)
        listener.receipt(receipt)

    def publish_stomp(self, conn, listener, destination, bodies):
        """SENDs with receipts; returns the x-seq of each (None when not journaled)."""
        seqs = []
        for i, body in enumerate(bodies):
            rid = unique("r")
            conn.send(destination, body, headers={"receipt": rid, "content-type": "text/plain"})
            receipt = listener.receipt(rid)
            seqs.append(int(receipt.headers["x-seq"]) if "x-seq" in receipt.headers else None)
        return seqs

    @staticmethod
    def enc(name):
        return urllib.parse.quote(name, safe="")

    @staticmethod
    def table(out):
        """The rows of a stompctl table as lists of cells (split on runs of 2+ spaces)."""
        lines = [line for line in out.splitlines() if line.strip()]
        return [re.split(r"\s{2,}", line.strip()) for line in lines]


class AdminApiTest(AdminCase):

    # --- health, readiness, metrics ---

    def test_healthz_and_readyz_need_no_token(self):
        h = self.api("GET", "/healthz", token=None)
        self.assertEqual((h.status, h.body), (200, "ok\n"))
        r = self.api("GET", "/readyz", token=None)
        self.assertEqual(r.status, 200, r)

    def test_metrics_parse_as_prometheus_text(self):
        conn, listener = self.stomp()
        room = unique("/topic/metrics.room")
        self.subscribe(conn, listener, room, id="m1")
        self.publish_stomp(conn, listener, room, ["a", "b"])
        listener.message()
        listener.message()

        reply = self.api("GET", "/metrics", token=None)
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.headers.get("Content-Type"),
                         "text/plain; version=0.0.4; charset=utf-8")
        families = {f.name: f for f in text_string_to_metric_families(reply.body)}
        untyped = [name for name, f in families.items() if f.type == "untyped"]
        self.assertEqual(untyped, [], "every sample belongs to a HELP/TYPE family")
        for name in families:
            self.assertTrue(name.startswith("stompd_"), name)
        # The parser reports counters without their _total suffix.
        expected = {
            "stompd_connections": "gauge",
            "stompd_frames_received": "counter",
            "stompd_frames_sent": "counter",
            "stompd_messages_published": "counter",
            "stompd_messages_delivered": "counter",
            "stompd_received_bytes": "counter",
            "stompd_sent_bytes": "counter",
            "stompd_slow_consumer_disconnects": "counter",
            "stompd_auth_failures": "counter",
            "stompd_replays": "counter",
            "stompd_replay_duration_seconds": "histogram",
            "stompd_journal_commit_duration_seconds": "histogram",
            "stompd_journal_batch_messages": "histogram",
            "stompd_store_ready": "gauge",
            "stompd_store_failures": "counter",
            "stompd_store_reconnects": "counter",
            "stompd_live_not_shared": "counter",
        }
        for name, kind in expected.items():
            self.assertIn(name, families, f"missing {name}")
            self.assertEqual(families[name].type, kind, name)

        def value(family, sample_name, **labels):
            for s in families[family].samples:
                if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
            raise AssertionError(f"no sample {sample_name}{labels}")

        self.assertGreaterEqual(value("stompd_connections", "stompd_connections",
                                      transport="tcp"), 1)
        self.assertGreaterEqual(value("stompd_frames_received", "stompd_frames_received_total",
                                      command="SEND"), 2)
        self.assertGreaterEqual(value("stompd_frames_sent", "stompd_frames_sent_total",
                                      command="MESSAGE"), 2)
        self.assertGreaterEqual(value("stompd_messages_published",
                                      "stompd_messages_published_total"), 2)
        self.assertGreaterEqual(value("stompd_messages_delivered",
                                      "stompd_messages_delivered_total"), 2)
        self.assertGreater(value("stompd_received_bytes", "stompd_received_bytes_total"), 0)
        self.assertGreater(value("stompd_sent_bytes", "stompd_sent_bytes_total"), 0)

        for name, f in families.items():
            if f.type != "histogram":
                continue
            buckets = [(float(s.labels["le"]), s.value) for s in f.samples
                       if s.name == name + "_bucket"]
            self.assertTrue(buckets, name)
            self.assertEqual(buckets[-1][0], float("inf"), f"{name} ends with le=+Inf")
            self.assertEqual([b for b, _ in buckets], sorted(b for b, _ in buckets), name)
            counts = [c for _, c in buckets]
            self.assertEqual(counts, sorted(counts), f"{name} buckets are cumulative")
            self.assertEqual(counts[-1], value(name, name + "_count"), name)
        self.assertGreaterEqual(value("stompd_journal_commit_duration_seconds",
                                      "stompd_journal_commit_duration_seconds_count"), 1)

    # --- authentication ---

    def test_api_without_or_with_a_wrong_token_is_401(self):
        missing = self.api("GET", "/api/stats", token=None)
        self.assertEqual(missing.status, 401, missing)
        self.assertTrue(missing.headers.get("WWW-Authenticate", "").startswith("Bearer"))
        self.assertIn("error", missing.json())
        wrong = self.api("GET", "/api/stats", token=TOKEN + "x")
        self.assertEqual(wrong.status, 401, wrong)
        self.assertIn('error="invalid_token"', wrong.headers.get("WWW-Authenticate"))
        self.assertEqual(self.api("POST", "/api/publish?destination=/topic/x", token="nope",
                                  body=b"x").status, 401)

    def test_stompctl_exits_3_on_a_wrong_or_missing_token(self):
        _, err = self.ctl("stats", token="wrong-token", status=3)
        self.assertIn("authentication failed", err)
        self.assertNotIn("wrong-token", err)
        self.ctl("destinations", token=None, status=3)

    def test_stompctl_exits_2_when_the_broker_is_unreachable(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        _, err = self.ctl("stats", url=f"http://127.0.0.1:{port}", status=2)
        self.assertIn("cannot reach the admin API", err)

    # --- destinations ---

    def test_destinations_list_filters_and_pages(self):
        conn, listener = self.stomp()
        prefix = unique("/topic/list")
        rooms = [f"{prefix}.room.{i}" for i in range(3)]
        for i, room in enumerate(rooms):
            self.subscribe(conn, listener, room, id=f"l{i}")
        jobs = unique("/queue/list-jobs")
        self.subscribe(conn, listener, jobs, id="lq", ack="client-individual")
        self.publish_stomp(conn, listener, rooms[0], ["x"])
        listener.message()

        everything = self.get_json("/api/destinations?limit=1000")
        names = [d["name"] for d in everything["destinations"]]
        self.assertEqual(names, sorted(names))
        for room in rooms:
            self.assertIn(room, names)
        self.assertIn(jobs, names)
        self.assertEqual(everything["total"], len(names))

        mine = self.get_json("/api/destinations?prefix=" + self.enc(prefix + "."))
        self.assertEqual([d["name"] for d in mine["destinations"]], rooms)
        room0 = mine["destinations"][0]
        self.assertEqual(room0["type"], "topic")
        self.assertEqual(room0["subscribers"], 1)
        self.assertTrue(room0["journaled"])
        self.assertEqual(room0["last_seq"], 1)
        self.assertEqual(room0["stored"], 1)
        self.assertGreaterEqual(room0["messages_in"], 1)

        by_pattern = self.get_json("/api/destinations?pattern=" + self.enc(prefix + ".*.1"))
        self.assertEqual([d["name"] for d in by_pattern["destinations"]], [rooms[1]])

        page = self.get_json(f"/api/destinations?prefix={self.enc(prefix)}&offset=1&limit=1")
        self.assertEqual([d["name"] for d in page["destinations"]], [rooms[1]])
        self.assertEqual(page["total"], 3)

        queue_info = self.get_json("/api/destinations?prefix=" + self.enc(jobs))["destinations"]
        self.assertEqual(queue_info[0]["type"], "queue")
        self.assertFalse(queue_info[0]["journaled"])

        # The table: a header, then one row per destination, name first.
        out, _ = self.ctl("destinations", "--prefix", prefix + ".")
        rows = self.table(out)
        self.assertEqual(rows[0][:3], ["NAME", "TYPE", "SUBS"])
        self.assertEqual([r[0] for r in rows[1:]], rooms)
        self.assertEqual(rows[1][1], "topic")
        out, _ = self.ctl("destinations", "--pattern", prefix + ".**", "--json")
        self.assertEqual([d["name"] for d in json.loads(out)["destinations"]], rooms)
        out, _ = self.ctl("destinations", "--prefix", prefix + ".", "--limit", "2")
        self.assertIn("showing 1-2 of 3", out)

    def test_bad_parameters_are_400(self):
        for path in ["/api/destinations?limit=0", "/api/destinations?limit=1001",
                     "/api/destinations?limit=ten", "/api/destinations?prefx=/topic/",
                     "/api/destinations?prefix=/a&pattern=/b", "/api/destinations?pattern=/a*b",
                     "/api/destinations/%2Ftopic%2Fx/messages?last=2&after=1",
                     "/api/destinations/%2Ftopic%2Fx/messages?last=0",
                     "/api/connections/abc"]:
            method = "DELETE" if path.startswith("/api/connections/") else "GET"
            reply = self.api(method, path)
            self.assertEqual(reply.status, 400, f"{path}: {reply}")
            self.assertIn("error", reply.json())
        # stompctl checks what it can itself: a usage error, exit 1.
        self.ctl("destinations", "--limit", "0", status=1)
        self.ctl("history", "/topic/x", "--last", "0", status=1)
        self.ctl("destinations", "--pattern", "/a*b", status=5)  # the broker's 400

    def test_wrong_method_is_405(self):
        reply = self.api("POST", "/api/destinations", body=b"")
        self.assertEqual(reply.status, 405, reply)
        self.assertEqual(reply.headers.get("Allow"), "GET")

    def test_one_destination_with_its_subscriptions(self):
        conn, listener = self.stomp()
        room = unique("/topic/one.room")
        self.subscribe(conn, listener, room, id="sub-one", ack="client")
        d = self.get_json("/api/destinations/" + self.enc(room))
        self.assertEqual(d["name"], room)
        self.assertEqual(d["subscribers"], 1)
        [s] = d["subscriptions"]
        self.assertEqual((s["id"], s["ack_mode"]), ("sub-one", "client"))
        self.assertIsInstance(s["connection"], int)

        out, _ = self.ctl("destination", room)
        self.assertRegex(out, rf"(?m)^name\s+{re.escape(room)}$")
        self.assertRegex(out, r"(?m)^subscribers\s+1$")
        self.assertRegex(out, r"(?m)^journaled\s+yes$")
        self.assertRegex(out, r"(?m)^\s*\d+\s+sub-one\s+\S+\s+client\s+0$")
        out, _ = self.ctl("destination", room, "--json")
        self.assertEqual(json.loads(out)["subscriptions"][0]["id"], "sub-one")

    def test_unknown_destination_is_404(self):
        reply = self.api("GET", "/api/destinations/" + self.enc("/topic/never.seen.here"))
        self.assertEqual(reply.status, 404, reply)
        self.assertIn("error", reply.json())
        raw = self.api("GET", "/api/destinations//topic/never.seen.here")
        self.assertEqual(raw.status, 404, raw)
        self.assertIn("percent-encode", raw.json()["error"])
        _, err = self.ctl("destination", "/topic/never.seen.here", status=4)
        self.assertIn("/topic/never.seen.here", err)

    # --- history ---

    def test_history_of_a_journaled_topic(self):
        conn, listener = self.stomp()
        room = unique("/topic/history.room")
        seqs = self.publish_stomp(conn, listener, room, ["one", "two", "three\nlines"])
        self.assertEqual(seqs, [1, 2, 3])
        binary = b"\xff\x00\x01binary"
        rid = unique("r")
        conn.send(room, binary, headers={"receipt": rid})
        listener.receipt(rid)

        h = self.get_json(f"/api/destinations/{self.enc(room)}/messages?last=2")
        self.assertEqual([m["seq"] for m in h["messages"]], [3, 4])
        self.assertEqual(h["messages"][0]["body"], "three\nlines")
        self.assertEqual(h["messages"][0]["headers"]["content-type"], "text/plain")
        self.assertNotIn("body", h["messages"][1])
        self.assertEqual(base64.b64decode(h["messages"][1]["body_base64"]), binary)
        self.assertEqual(h["head_seq"], 4)
        self.assertTrue(h["complete"])
        now_ms = time.time() * 1000
        self.assertLess(abs(h["messages"][0]["timestamp_ms"] - now_ms), 60_000)

        after = self.get_json(f"/api/destinations/{self.enc(room)}/messages?after=1&limit=1")
        self.assertEqual([m["body"] for m in after["messages"]], ["two"])

        out, _ = self.ctl("history", room)
        rows = self.table(out)
        self.assertEqual(rows[0], ["SEQ", "AGE", "SIZE", "BODY"])
        self.assertEqual([r[0] for r in rows[1:5]], ["1", "2", "3", "4"])
        self.assertEqual(rows[1][3], "one")
        self.assertEqual(rows[3][3], "three\\nlines")
        self.assertEqual(rows[4][3], "<binary>")
        self.assertEqual(rows[4][2], "9 B")
        self.assertIn("4 messages, head x-seq 4", out)
        out, _ = self.ctl("history", room, "--after", "2", "--limit", "1", "--json")
        self.assertEqual([m["seq"] for m in json.loads(out)["messages"]], [3])
        out, _ = self.ctl("history", room, "--last", "1")
        self.assertEqual([r[0] for r in self.table(out)[1:-1]], ["4"])

    def test_history_of_a_queue_is_404(self):
        jobs = unique("/queue/history-jobs")
        reply = self.api("GET", f"/api/destinations/{self.enc(jobs)}/messages")
        self.assertEqual(reply.status, 404, reply)
        _, err = self.ctl("history", jobs, status=4)
        self.assertIn("not journaled", err)

    def test_purge_deletes_stored_messages_and_the_sequence_continues(self):
        conn, listener = self.stomp()
        room = unique("/topic/purge.room")
        self.publish_stomp(conn, listener, room, ["a", "b", "c"])
        reply = self.api("DELETE", f"/api/destinations/{self.enc(room)}/messages")
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.json()["deleted"], 3)
        h = self.get_json(f"/api/destinations/{self.enc(room)}/messages")
        self.assertEqual(h["messages"], [])
        self.assertEqual(self.publish_stomp(conn, listener, room, ["d"]), [4])
        out, _ = self.ctl("purge", room)
        self.assertEqual(out, f"deleted 1 stored message of {room}\n")
        out, _ = self.ctl("purge", room, "--json")
        self.assertEqual(json.loads(out)["deleted"], 0)
        self.ctl("purge", unique("/queue/purge-jobs"), status=4)

    # --- publish ---

    def test_http_publish_is_stored_then_delivered(self):
        conn, listener = self.stomp()
        room = unique("/topic/publish.room")
        self.subscribe(conn, listener, room, id="p1")
        first = self.publish_stomp(conn, listener, room, ["from stomp"])
        listener.message()

        body = json.dumps({"destination": room, "body": "from http",
                           "headers": {"x-origin": "backend", "content-type": "text/plain"}})
        reply = self.api("POST", "/api/publish", body=body.encode(),
                         content_type="application/json")
        self.assertEqual(reply.status, 200, reply)
        seq = reply.json()["x-seq"]
        self.assertEqual(seq, first[0] + 1)
        self.assertEqual(reply.json()["message-id"], str(seq))
        m = listener.message()
        self.assertEqual(m.body, b"from http")
        self.assertEqual(m.headers["x-seq"], str(seq))
        self.assertEqual(m.headers["x-origin"], "backend")
        h = self.get_json(f"/api/destinations/{self.enc(room)}/messages?after={seq - 1}")
        self.assertEqual([(x["seq"], x["body"]) for x in h["messages"]], [(seq, "from http")])

        # Only JSON bodies: a raw body (which a cross-site page could send as text/plain) is 415.
        raw = self.api("POST", "/api/publish?destination=" + self.enc(room),
                       body=b"\x00\x01raw", content_type="application/octet-stream")
        self.assertEqual(raw.status, 415, raw)
        self.assertIn("application/json", raw.json()["error"])

        # stompctl: BODY, stdin, headers, --json.
        out, _ = self.ctl("publish", room, "hello there", "--header", "k=v")
        self.assertEqual(out, f"published to {room}: x-seq {seq + 1}, message-id {seq + 1}\n")
        m = listener.message()
        self.assertEqual((m.body, m.headers["k"]), (b"hello there", "v"))
        out, _ = self.ctl("publish", room, "--content-type", "application/json", "--json",
                          stdin=b'{"from": "stdin"}')
        self.assertEqual(json.loads(out)["x-seq"], seq + 2)
        m = listener.message()
        self.assertEqual((m.body, m.headers["content-type"]),
                         (b'{"from": "stdin"}', "application/json"))

    def test_http_publish_to_a_queue(self):
        conn, listener = self.stomp()
        jobs = unique("/queue/publish-jobs")
        self.subscribe(conn, listener, jobs, id="q1", ack="auto")
        out, _ = self.ctl("publish", jobs, "job 1")
        self.assertRegex(out, rf"^published to {re.escape(jobs)}: message-id \S+\n$")
        self.assertEqual(listener.message().body, b"job 1")

    def test_http_publish_refusals(self):
        no_token = self.api("POST", "/api/publish?destination=/topic/x", token=None, body=b"x")
        self.assertEqual(no_token.status, 401, no_token)
        bad = self.api("POST", "/api/publish", body=b'{"destination": "/nowhere/x", "body": "x"}',
                       content_type="application/json")
        self.assertEqual(bad.status, 400, bad)
        not_json = self.api("POST", "/api/publish", body=b"x", content_type="text/plain")
        self.assertEqual(not_json.status, 415, not_json)
        big = self.api("POST", "/api/publish?destination=/topic/big",
                       body=b"x" * (1024 * 1024 + 1), content_type="text/plain")
        self.assertEqual(big.status, 413, big)
        self.ctl("publish", "/nowhere/x", "x", status=5)

    # --- connections ---

    def test_connections_and_kick(self):
        raw = Stomp.connected(self.broker.tcp_port)
        try:
            raw.send_frame("SUBSCRIBE", [("destination", unique("/topic/kick.room")),
                                         ("id", "k1"), ("receipt", "k-sub")])
            self.assertEqual(raw.frame()[0], "RECEIPT")
            peer = f"127.0.0.1:{raw.sock.getsockname()[1]}"
            listing = self.get_json("/api/connections")
            [mine] = [c for c in listing["connections"] if c["peer"] == peer]
            self.assertEqual(mine["transport"], "tcp")
            self.assertEqual(mine["version"], "1.2")
            self.assertEqual(mine["subscriptions"], 1)
            self.assertEqual(mine["user"], "anonymous")
            self.assertLess(abs(mine["connected_since_ms"] - time.time() * 1000), 60_000)
            self.assertEqual(self.get_json(f"/api/connections/{mine['id']}")["peer"], peer)

            out, _ = self.ctl("connections")
            rows = self.table(out)
            self.assertEqual(rows[0], ["ID", "USER", "PEER", "TRANSPORT", "VERSION", "SUBS",
                                       "QUEUED", "IN", "OUT", "CONNECTED"])
            [row] = [r for r in rows[1:] if r[2] == peer]
            self.assertEqual(row[:5], [str(mine["id"]), "anonymous", peer, "tcp", "1.2"])
            out, _ = self.ctl("connections", "--json")
            self.assertIn(peer, [c["peer"] for c in json.loads(out)["connections"]])

            out, _ = self.ctl("kick", str(mine["id"]))
            self.assertEqual(out, f"disconnected connection {mine['id']}\n")
            command, headers, _ = raw.frame()
            self.assertEqual(command, "ERROR")
            self.assertEqual(headers.get("message"), "disconnected by administrator")
            self.assertIsNotNone(raw.wait_closed(scaled(5)), "the connection is closed")

            self.ctl("kick", str(mine["id"]), status=4)
            self.ctl("kick", "not-a-number", status=1)
            gone = self.api("DELETE", f"/api/connections/{mine['id']}")
            self.assertEqual(gone.status, 404, gone)
        finally:
            raw.close()

    # --- stats ---

    def test_stats(self):
        self.stomp()
        s = self.get_json("/api/stats")
        for key in ["node", "uptime_seconds", "connections", "destinations", "messages_in",
                    "messages_out", "rate_in", "rate_out", "journal_bytes", "rss_bytes",
                    "held_bytes"]:
            self.assertIn(key, s)
        # node_name unset: <hostname>:<TCP port>, the same in every place that names the node.
        node = f"{socket.gethostname()}:{self.broker.tcp_port}"
        self.assertEqual(s["node"], node)
        self.assertEqual(self.get_json("/api/connections")["node"], node)
        metrics = self.api("GET", "/metrics", token=None).body
        self.assertIn(f'stompd_node_info{{node="{node}"}} 1\n', metrics)
        self.assertIn(f"node={node}", self.broker.log())
        self.assertGreaterEqual(s["connections"], 1)
        self.assertGreater(s["rss_bytes"], 0)
        out, _ = self.ctl("stats")
        keys = [line.split("  ")[0] for line in out.splitlines()]
        self.assertEqual(keys, ["node", "uptime", "connections", "destinations",
                                "messages in", "messages out", "journal", "memory (RSS)",
                                "messages held"])
        self.assertRegex(out, r"(?m)^memory \(RSS\)\s+\d+(\.\d)? [KMG]iB$")
        self.assertRegex(out, rf"(?m)^node\s+{re.escape(node)}$")
        out, _ = self.ctl("stats", "--json")
        self.assertIn("uptime_seconds", json.loads(out))


class StompctlCliTest(AdminCase):
    """What stompctl does on its own: help, usage errors, passwd."""

    def test_help_lists_every_command_and_the_exit_statuses(self):
        out, _ = self.ctl("--help")
        for command in ["destinations", "destination", "history", "purge", "connections",
                        "kick", "stats", "publish", "passwd"]:
            self.assertRegex(out, rf"(?m)^  {command}\s", command)
            sub, _ = self.ctl(command, "--help")
            self.assertTrue(sub.startswith(f"stompctl {command}: "), sub)
            self.assertIn(f"Usage: stompctl {command}", sub)
        for code in range(6):
            self.assertRegex(out, rf"(?m)^  {code}  ")
        self.assertIn("STOMPCTL_URL", out)
        self.assertIn("STOMPCTL_TOKEN", out)

    def test_usage_errors_exit_1(self):
        _, err = self.ctl(status=1, one_line=False)  # no command: the usage, on stderr
        self.assertIn("Usage: stompctl", err)
        self.ctl("frobnicate", status=1)
        self.ctl("destination", status=1)
        self.ctl("stats", "extra", status=1)
        self.ctl("stats", "--bogus", status=1)
        self.ctl("history", "/topic/x", "--last", "1", "--after", "2", status=1)
        self.ctl("stats", url="https://127.0.0.1:1", status=1)

    def test_passwd_prints_a_hash_like_stompd(self):
        out, _ = self.ctl("passwd", stdin=b"correct horse\n", url="not a url")
        self.assertRegex(out, r"^pbkdf2-sha256\$600000\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+\n$")
        stompd = subprocess.run([Broker.binary(), "--hash-passcode"], input=b"correct horse\n",
                                capture_output=True, timeout=scaled(30))
        self.assertEqual(stompd.returncode, 0)
        self.assertEqual(out.split("$")[:2], stompd.stdout.decode().split("$")[:2])
        self.ctl("passwd", stdin=b"", status=1)


class CrossSiteTest(AdminCase):
    """Issue 12 item 5: the default config has no admin token; browsers must still be kept out."""

    CONFIG = {"admin": {}}

    def test_a_cross_site_text_plain_publish_is_refused(self):
        conn, listener = self.stomp()
        room = unique("/topic/csrf.room")
        self.subscribe(conn, listener, room, id="c1")
        body = json.dumps({"destination": room, "body": "forged"}).encode()
        for content_type in ("text/plain", "application/json"):
            r = self.api("POST", "/api/publish", token=None, body=body, content_type=content_type,
                         headers={"Origin": "http://evil.example"})
            self.assertEqual(r.status, 403, r)
            self.assertIn("Origin", r.json()["error"])
        # Without Origin (curl, stompctl) text/plain is still no JSON.
        r = self.api("POST", "/api/publish", token=None, body=body, content_type="text/plain")
        self.assertEqual(r.status, 415, r)
        ok = self.api("POST", "/api/publish", token=None, body=body,
                      content_type="application/json")
        self.assertEqual(ok.status, 200, ok)
        self.assertEqual(listener.message().body, b"forged")
        self.ctl("publish", room, "by stompctl", token=None)
        self.assertEqual(listener.message().body, b"by stompctl")

    def test_a_rebound_host_name_cannot_read_the_api(self):
        r = self.api("GET", "/api/stats", token=None,
                     headers={"Host": f"evil.example:{self.broker.admin_port}"})
        self.assertEqual(r.status, 403, r)
        self.assertIn("Host", r.json()["error"])
        ok = self.api("GET", "/api/stats", token=None,
                      headers={"Host": f"localhost:{self.broker.admin_port}"})
        self.assertEqual(ok.status, 200, ok)
        metrics = self.api("GET", "/metrics", token=None,
                           headers={"Host": f"stompd.monitoring:{self.broker.admin_port}"})
        self.assertEqual(metrics.status, 200, metrics)


class BackendTokenPublishTest(AdminCase):
    """POST /api/publish with a backend's JWT: authorized like that backend's STOMP SEND."""

    CONFIG = {
        "admin": {"token": TOKEN},
        "auth": {
            "anonymous": True,
            "jwt": {"enabled": True, "secret": JWT_SECRET},
            "rules": [{"users": ["anonymous"], "subscribe": ["/topic/**", "/queue/**"],
                       "send": ["/topic/**", "/queue/**"]}],
        },
    }

    def token(self):
        return jwt_hs256({"sub": "backend-1", "exp": int(time.time()) + 600,
                          "stomp": {"send": ["/topic/backend.**"]}})

    def test_backend_token_publishes_where_its_grants_allow(self):
        conn, listener = self.stomp()
        room = unique("/topic/backend.room")
        self.subscribe(conn, listener, room, id="b1")
        ok = self.api("POST", "/api/publish", token=self.token(),
                      body=json.dumps({"destination": room, "body": "from backend"}).encode(),
                      content_type="application/json")
        self.assertEqual(ok.status, 200, ok)
        self.assertEqual(ok.json()["x-seq"], 1)
        self.assertEqual(listener.message().body, b"from backend")

        denied = self.api("POST", "/api/publish", token=self.token(),
                          body=json.dumps({"destination": "/topic/other", "body": "x"}).encode(),
                          content_type="application/json")
        self.assertEqual(denied.status, 403, denied)
        _, err = self.ctl("publish", "/topic/other", "x", token=self.token(), status=3)
        self.assertIn("not allowed", err)
        # The admin token still publishes anywhere; a backend token opens nothing else.
        self.ctl("publish", "/topic/other", "x")
        self.ctl("stats", token=self.token(), status=3)
        forged = jwt_hs256({"sub": "backend-1", "exp": int(time.time()) + 600},
                           secret="not-the-secret-" + "y" * 32)
        self.assertEqual(self.api("POST", "/api/publish?destination=" + self.enc(room),
                                  token=forged, body=b"x").status, 401)



class HeldBudgetPublishTest(AdminCase):
    """POST /api/publish while the broker holds limits.max_held_bytes_total of messages: 503
    naming the limit (a STOMP producer would be pushed back), and 200 again once a consumer
    has taken the backlog."""

    CONFIG = {"admin": {"token": TOKEN}, "limits": {"max_held_bytes_total": 64 * 1024}}

    def publish(self, queue_name):
        body = json.dumps({"destination": queue_name, "body": "h" * 8192}).encode()
        return self.api("POST", "/api/publish", body=body, content_type="application/json")

    def test_publish_answers_503_while_the_budget_is_held(self):
        jobs = unique("/queue/held")
        for n in range(32):  # 256 KiB at most
            reply = self.publish(jobs)
            if reply.status != 200:
                break
        self.assertEqual(reply.status, 503, reply)
        self.assertIn("max_held_bytes_total", reply.body)
        self.assertGreaterEqual(n, 6)  # 64 KiB hold about eight of these
        self.assertGreater(self.get_json("/api/stats")["held_bytes"], 64 * 1024)
        conn, listener = self.stomp()
        self.subscribe(conn, listener, jobs, id="drain")
        for _ in range(n):
            listener.message()
        deadline = time.monotonic() + scaled(5)
        while self.get_json("/api/stats")["held_bytes"] > 64 * 1024:
            self.assertLess(time.monotonic(), deadline, "the backlog was taken but not freed")
            time.sleep(0.05)
        self.assertEqual(self.publish(jobs).status, 200)

if __name__ == "__main__":
    unittest.main()
