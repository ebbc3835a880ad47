"""stomp.py (Debian's python3-stomp) against stompd over TLS, with static users.

The broker listens for STOMP over TLS only (tcp.tls), with a self-signed certificate made
here by the openssl CLI. Users log in with hashed passcodes (PBKDF2: one hash made by
`stompd --hash-passcode`, the others here with hashlib at the minimum iteration count, to
keep the suite fast); rules give the council role the lost-item rooms.

Run with /usr/bin/python3 (Debian's python3-stomp), through CTest (e2e_security_py).
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest
import uuid
import warnings

try:
    import stomp
except ImportError as e:
    raise ImportError("stomp.py is missing: install Debian's python3-stomp (scripts/install-deps "
                      "test) and run with /usr/bin/python3") from e

from stomp_py_support import Collector
from stompd_harness import Broker, pbkdf2_hash, scaled

HOST = "127.0.0.1"
ROOM = "/topic/lost-item.42.room.7"


def make_certificate(directory):
    """A self-signed certificate for localhost and 127.0.0.1; returns (cert, key) paths."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class SecurityOverTls(unittest.TestCase):
    passcodes = {"council": "council-passcode-1", "alice": "alice-passcode-2",
                 "bob": "bob-passcode-3"}

    @classmethod
    def setUpClass(cls):
        # stomp.py reads its SSLSocket on a receiver thread while the caller writes on another,
        # which OpenSSL does not support for one connection: with TLS 1.3, whose session
        # tickets arrive after the handshake, about 2 % of stomp.py's connects then fail on the
        # client side ("[SSL] internal error" on write, or a CONNECT never sent). TLS 1.2 has
        # no post-handshake messages; test_presents_tls_1_2_or_newer_... covers 1.3.
        cls.stomp_tls_version = stomp.transport.DEFAULT_SSL_VERSION
        stomp.transport.DEFAULT_SSL_VERSION = ssl.PROTOCOL_TLSv1_2
        cls.dir = tempfile.mkdtemp(prefix="stompd-e2e-sec-")
        cls.cert, cls.key = make_certificate(cls.dir)
        # One hash from the real CLI (600 000 iterations: one slow login), the rest from hashlib.
        cli = subprocess.run([Broker.binary(), "--hash-passcode"],
                             input=cls.passcodes["council"].encode(), capture_output=True,
                             check=True, timeout=scaled(60))
        council_hash = cli.stdout.decode().strip()
        assert council_hash.startswith("pbkdf2-sha256$600000$"), council_hash
        cls.hashes = {"council": council_hash, "alice": pbkdf2_hash(cls.passcodes["alice"]),
                      "bob": pbkdf2_hash(cls.passcodes["bob"])}
        cls.broker = Broker.start(log_level="debug", config={
            "tls": {"cert_file": cls.cert, "key_file": cls.key},
            "tcp": {"tls": True},
            "auth": {
                "anonymous": False,
                "users": [
                    {"name": "council", "passcode": f'"{cls.hashes["council"]}"',
                     "roles": ["council"]},
                    {"name": "alice", "passcode": f'"{cls.hashes["alice"]}"', "roles": ["student"]},
                    {"name": "bob", "passcode": f'"{cls.hashes["bob"]}"', "roles": ["student"]},
                ],
                "rules": [
                    {"roles": ["council"], "subscribe": ["/topic/lost-item.**"],
                     "send": ["/topic/lost-item.**"]},
                    {"users": ["alice"], "subscribe": [ROOM], "send": [ROOM]},
                    {"users": ['"*"'], "subscribe": ["/topic/dm.{user}.*"],
                     "send": ["/topic/dm.*.*"]},
                ],
            },
        })
        cls.port = cls.broker.tcp_port

    @classmethod
    def tearDownClass(cls):
        stomp.transport.DEFAULT_SSL_VERSION = cls.stomp_tls_version
        cls.broker.stop()
        cls.broker.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            try:
                c.disconnect()
            except Exception:  # already closed by the broker
                pass

    def connection(self, verify=True):
        c = stomp.Connection12([(HOST, self.port)], heartbeats=(0, 0), reconnect_attempts_max=1,
                               timeout=scaled(5))
        # With ca_certs the broker's certificate is checked against it; without, not at all.
        c.set_ssl(for_hosts=[(HOST, self.port)], ca_certs=self.cert if verify else None)
        listener = Collector()
        c.set_listener("e2e", listener)
        self.conns.append(c)
        return c, listener

    def login(self, user, passcode=None, verify=True):
        c, listener = self.connection(verify)
        c.connect(user, self.passcodes[user] if passcode is None else passcode, wait=True)
        return c, listener

    def subscribe(self, conn, listener, destination):
        rid = f"sub-{uuid.uuid4().hex[:8]}"
        conn.subscribe(destination, id=rid, ack="auto", headers={"receipt": rid})
        listener.receipt(rid)

    def publish(self, conn, listener, destination, body):
        rid = f"send-{uuid.uuid4().hex[:8]}"
        conn.send(destination, body, headers={"receipt": rid})
        listener.receipt(rid)

    def assert_refused(self, user, passcode):
        c, listener = self.connection()
        if user is None:
            with self.assertRaises(stomp.exception.ConnectFailedException):
                c.connect(wait=True)
        else:
            with self.assertRaises(stomp.exception.ConnectFailedException):
                c.connect(user, passcode, wait=True)
        err = listener.error()
        self.assertEqual(err.headers.get("message"), "access refused", err.headers)
        self.assertIn(err.body.strip(), ("", "access refused"), "no detail in the ERROR body")
        self.assertTrue(listener.wait_disconnected(), "the broker closes after refusing")

    def assert_denied(self, listener, destination):
        err = listener.error()
        self.assertEqual(err.headers.get("message"), "access denied", err.headers)
        self.assertIn(destination, err.body)
        self.assertTrue(listener.wait_disconnected(), "the broker closes after denying")

    def test_connect_subscribe_send_receive_over_verified_tls(self):
        c, listener = self.login("alice")
        self.subscribe(c, listener, "/topic/dm.alice.inbox")
        self.publish(c, listener, "/topic/dm.alice.inbox", "over TLS")
        m = listener.message()
        self.assertEqual(m.body, "over TLS")
        self.assertEqual(m.headers["destination"], "/topic/dm.alice.inbox")

    def test_works_without_verifying_the_certificate(self):
        c, listener = self.login("bob", verify=False)
        self.subscribe(c, listener, "/topic/dm.bob.inbox")
        self.publish(c, listener, "/topic/dm.bob.inbox", "unverified TLS")
        self.assertEqual(listener.message().body, "unverified TLS")

    def test_messages_cross_between_tls_connections(self):
        alice, alice_in = self.login("alice")
        bob, bob_in = self.login("bob")
        self.subscribe(bob, bob_in, "/topic/dm.bob.from-alice")
        self.publish(alice, alice_in, "/topic/dm.bob.from-alice", "hello bob")
        self.assertEqual(bob_in.message().body, "hello bob")

    def test_presents_tls_1_2_or_newer_with_the_configured_certificate(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        with socket.create_connection((HOST, self.port), timeout=scaled(5)) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                self.assertEqual(tls.version(), "TLSv1.3", "the newest both sides have")
                self.assertEqual(dict(x[0] for x in tls.getpeercert()["subject"])["commonName"],
                                 "localhost")

    def test_refuses_tls_1_0_and_1_1(self):
        # Offered by a client willing to use them (SECLEVEL 0), they are refused by the broker
        # with a protocol_version alert.
        for version in ("TLSv1", "TLSv1_1"):
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.check_hostname = False
            old.verify_mode = ssl.CERT_NONE
            try:
                old.set_ciphers("DEFAULT:@SECLEVEL=0")
                with warnings.catch_warnings():  # TLSVersion.TLSv1 is deprecated: that's the point
                    warnings.simplefilter("ignore", DeprecationWarning)
                    old.minimum_version = old.maximum_version = getattr(ssl.TLSVersion, version)
            except (ValueError, ssl.SSLError):
                self.skipTest(f"this OpenSSL cannot offer {version}")
            with socket.create_connection((HOST, self.port), timeout=scaled(5)) as raw:
                with self.assertRaises(ssl.SSLError) as cm:
                    old.wrap_socket(raw, server_hostname="localhost")
            self.assertIn("ALERT_PROTOCOL_VERSION", str(cm.exception), version)

    def test_plain_stomp_on_the_tls_port_gets_nothing(self):
        with socket.create_connection((HOST, self.port), timeout=scaled(5)) as s:
            s.sendall(b"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:alice\npasscode:"
                      + self.passcodes["alice"].encode() + b"\n\n\0")
            received = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    received += chunk
            except (ConnectionError, socket.timeout):
                pass
        self.assertNotIn(b"CONNECTED", received)

    def test_right_passcode_is_accepted(self):
        c, listener = self.login("council")
        self.assertTrue(c.is_connected())

    def test_wrong_passcode_is_refused(self):
        self.assert_refused("alice", "not-alices-passcode")

    def test_another_users_passcode_is_refused(self):
        self.assert_refused("alice", self.passcodes["bob"])

    def test_empty_passcode_is_refused(self):
        self.assert_refused("alice", "")

    def test_unknown_user_is_refused_with_anonymous_off(self):
        self.assert_refused("mallory", "whatever")

    def test_no_credentials_are_refused_with_anonymous_off(self):
        self.assert_refused(None, None)

    def test_stored_hash_is_not_a_passcode(self):
        # Someone who read the config file has the hash, not the passcode.
        self.assert_refused("alice", self.hashes["alice"])

    def test_council_role_rule_opens_every_lost_item_room(self):
        council, council_in = self.login("council")
        alice, alice_in = self.login("alice")
        self.subscribe(council, council_in, ROOM)
        self.subscribe(alice, alice_in, ROOM)
        self.publish(alice, alice_in, ROOM, "my umbrella")
        self.publish(council, council_in, ROOM, "found it")
        for listener in (council_in, alice_in):
            self.assertEqual([listener.message().body for _ in range(2)],
                             ["my umbrella", "found it"])
        # The role covers other rooms too; alice's user rule does not.
        other = "/topic/lost-item.43.room.8"
        self.subscribe(council, council_in, other)
        self.publish(council, council_in, other, "another room")
        self.assertEqual(council_in.message().body, "another room")

    def test_student_without_the_role_is_denied_the_room(self):
        bob, bob_in = self.login("bob")
        bob.subscribe(ROOM, id="s1", ack="auto", headers={"receipt": "s1"})
        self.assert_denied(bob_in, ROOM)
        bob2, bob2_in = self.login("bob")
        bob2.send(ROOM, "bob was here", headers={"receipt": "p1"})
        self.assert_denied(bob2_in, ROOM)
        alice, alice_in = self.login("alice")
        alice.subscribe("/topic/lost-item.43.room.8", id="s1", ack="auto",
                        headers={"receipt": "s1"})
        self.assert_denied(alice_in, "/topic/lost-item.43.room.8")

    def test_z_log_has_no_passcodes(self):
        # Last (unittest sorts by name): every login above has been logged by now.
        log = self.broker.log()
        self.assertIn("access refused", log)
        for passcode in list(self.passcodes.values()) + ["not-alices-passcode"]:
            self.assertNotIn(passcode, log)


class PlainTextPasscodes(unittest.TestCase):
    def test_plain_text_passcode_is_refused_at_startup(self):
        with self.assertRaises(RuntimeError) as cm:
            broker = Broker.start(config={"auth": {"users": [
                {"name": "alice", "passcode": "secret-in-the-clear"}]}})
            broker.stop()
            broker.cleanup()
        message = str(cm.exception)
        self.assertIn("exited early", message)
        self.assertIn("auth.users[0].passcode", message)  # names the key
        self.assertIn("--hash-passcode", message)  # and says what to do
        self.assertNotIn("secret-in-the-clear", message.split("--- stompd stderr ---")[1])


if __name__ == "__main__":
    unittest.main()
