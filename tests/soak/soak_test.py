"""Soak: one stompd with modest limits under everything at once, then a reconciliation.

For --seconds N (default 60, or STOMPD_SOAK_SECONDS), in parallel:
  publishers    receipted SENDs to journaled rooms /topic/soak.room.<i>, paced
  members       join a room, resume with x-replay after:<last x-seq seen>, read a while, leave
                (DISCONNECT, a dropped socket, or half a frame); every visit must see the room
                contiguously: no gap, no duplicate, replay joining live
  queues        receipted SENDs to /queue/soak.<mode>; competing consumers in auto, client and
                client-individual ack, NACKing some and dropping their socket holding others
  slow readers  a 4 KiB receive window, reading a frame every 50 ms, on a busy room and on
  a flooder     256 KiB SENDs without receipts, in bursts (the journal pushes it back)
  transactions  one that grows past limits.max_transaction_bytes (ERROR), one committed
  half frames   connections that send half a SEND and go
  a probe       once a second, a fresh client's subscribe-publish-receive round trip
  RSS           sampled twice a second
Then every receipted room SEND must be in the journal exactly once, with its x-seq and body,
and nothing else (no half frame, no aborted transaction); every committed transaction whole;
every receipted queue message delivered, more than once only if a consumer let go of it
unacknowledged; the probe always under PROBE_LIMIT_S, RSS under RSS_GROWTH_LIMIT_MIB above
the start; SIGTERM graceful, and no sanitizer report in the broker's stderr.

CTest runs it for 60 s (soak_short). The long run, with its last result, is in
docs/SECURITY.md ("Soak test"):
    STOMPD_BIN=build/asan/broker/stompd python3 tests/soak/soak_test.py --seconds 3600
Exit status 0 when everything reconciles, 1 with the failures and the broker's log otherwise.
"""

import argparse
import json
import os
import random
import socket
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e",
                                "python"))
from history_support import BrokerError, Stomp, describe, seq_of  # noqa: E402
from stompd_harness import (Broker, asan_small_quarantine, rss_mib,  # noqa: E402
                            sanitizer_reports, scaled)

KIB, MIB = 1024, 1024 * 1024
ROOMS = 8
MODES = ("auto", "client", "client-individual")
PROBE_LIMIT_S = scaled(2)
RSS_GROWTH_LIMIT_MIB = int(os.environ.get("STOMPD_SOAK_RSS_GROWTH_MIB") or 200)
CONFIG = {
    "limits": {"max_frame_bytes": 320 * KIB, "max_body_bytes": 300 * KIB,
               "max_queued_bytes": MIB, "max_transaction_bytes": MIB,
               "max_pending_store_bytes": 2 * MIB, "max_pending_store_bytes_total": 8 * MIB,
               "max_subscriptions_per_connection": 16, "connect_timeout_ms": 2000},
    "heartbeat": {"send_interval_ms": 0, "receive_interval_ms": 0},
    "journal": {"destinations": [
        {"pattern": "/topic/soak.room.*", "journaled": True, "max_messages": 0, "max_age_ms": 0},
        {"pattern": "/topic/soak.tx", "journaled": True, "max_messages": 0, "max_age_ms": 0},
        # The flood is journaled (that is what pushes it back) but kept short.
        {"pattern": "/topic/soak.flood", "journaled": True, "max_messages": 16}]},
}


def room(i):
    return f"/topic/soak.room.{i}"


class Soak:
    def __init__(self, seconds, rate):
        self.seconds, self.rate = seconds, rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.counts = {}
        self.published = {i: {} for i in range(ROOMS)}   # room -> {x-seq: body}
        self.committed = []                              # ids of receipted COMMITs, 3 SENDs each
        self.queued = {m: set() for m in MODES}          # receipted queue bodies
        self.received = {m: {} for m in MODES}           # body -> deliveries
        self.released = {m: set() for m in MODES}        # NACKed or left unacknowledged
        self.probes, self.rss = [], []
        self.broker = Broker.start(config=CONFIG, env=asan_small_quarantine())

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def fail(self, message):
        with self.lock:
            self.failures.append(message)
        self.stop.set()

    def connect(self, **kwargs):
        return Stomp.connected(self.broker.tcp_port, **kwargs)

    def loop(self, name, body):
        """Runs body() until the soak ends; an exception is a failure named after the thread."""
        def run():
            try:
                while not self.stop.is_set():
                    body()
            except Exception as e:  # noqa: BLE001 - reported with the broker's log
                self.fail(f"{name}: {e!r}")
        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        return t

    def pause(self, seconds):
        self.stop.wait(seconds)

    # --- the traffic -----------------------------------------------------------------------

    def publisher(self, index):
        c = self.connect()
        try:
            n = 0
            while not self.stop.is_set():
                r = (index + n) % ROOMS
                body = f"p{index}-{n}"
                seq = int(c.publish_confirmed(room(r), body)["x-seq"])
                with self.lock:
                    if seq in self.published[r]:
                        raise AssertionError(f"x-seq {seq} of {room(r)} given twice")
                    self.published[r][seq] = body
                n += 1
                self.pause(1 / self.rate)
        finally:
            c.disconnect()

    def member(self, index, last_seen):
        r = random.randrange(ROOMS)
        c = self.connect()
        after = last_seen.get(r, 0)
        replayed, receipt = c.subscribe_replay(room(r), "m", replay=f"after:{after}")
        complete = receipt.get("x-replay-complete") == "true"
        seqs = [seq_of(f) for f in replayed]
        visit_ends = time.monotonic() + random.uniform(0.2, 1.5)
        while time.monotonic() < visit_ends and not self.stop.is_set():
            try:
                frame = c.frame(timeout=0.1)
            except TimeoutError:
                continue
            if frame[0] != "MESSAGE":
                raise AssertionError(f"member {index} in {room(r)}: {describe(frame)}")
            seqs.append(seq_of(frame))
        expected_first = after + 1 if complete else (seqs[0] if seqs else after + 1)
        want = list(range(expected_first, expected_first + len(seqs)))
        if seqs != want:
            gaps = sorted(set(want) - set(seqs))[:5]
            raise AssertionError(f"member {index} in {room(r)} after:{after} saw a gap or a "
                                 f"duplicate: first {seqs[:3]}, missing {gaps}, "
                                 f"{len(seqs)} messages, complete={complete}")
        if seqs:
            last_seen[r] = seqs[-1]
        self.count("member visits")
        self.leave(c)

    def leave(self, c):
        """One of the three ways a phone goes away."""
        way = random.randrange(3)
        if way == 0:
            c.disconnect()
        elif way == 1:
            c.close()
        else:
            try:
                c.send(b"SEND\ndestination:/topic/soak.room.0\ncontent-length:100\n\nhalf")
            except OSError:
                pass
            c.close()

    def queue_producer(self):
        c = self.connect()
        try:
            n = 0
            while not self.stop.is_set():
                mode = MODES[n % len(MODES)]
                body = f"{mode}:{n}"
                c.publish_confirmed(f"/queue/soak.{mode}", body)
                with self.lock:
                    self.queued[mode].add(body)
                n += 1
                self.pause(1 / self.rate)
        finally:
            c.disconnect()

    def consume(self, mode, visit_seconds, draining=False):
        """One consumer visit to /queue/soak.<mode>. Returns the number of messages taken."""
        c = self.connect()
        c.send_frame("SUBSCRIBE", [("id", "q"), ("destination", f"/queue/soak.{mode}"),
                                   ("ack", mode), ("prefetch-count", "8")])
        unacked, taken = [], 0  # [(ack id, body)] not yet settled, in delivery order
        # ACKs sent with a receipt and not yet answered: receipt id -> the bodies they settle.
        # A connection that dies (close with data unread: the peer sees a reset) may take an
        # ACK still in the broker's receive buffer with it, so only an answered one counts.
        unconfirmed, receipts = {}, 0
        ends = time.monotonic() + visit_seconds
        while time.monotonic() < ends:
            try:
                frame = c.frame(timeout=scaled(1) if draining else 0.1)
            except TimeoutError:
                if draining:  # a second with nothing: the queue is empty
                    break
                continue
            if frame[0] == "RECEIPT" and frame[1].get("receipt-id") in unconfirmed:
                del unconfirmed[frame[1]["receipt-id"]]
                continue
            if frame[0] != "MESSAGE":
                raise AssertionError(f"{mode} consumer: {describe(frame)}")
            body = frame[2].decode()
            taken += 1
            with self.lock:
                self.received[mode][body] = self.received[mode].get(body, 0) + 1
            if mode == "auto":
                continue
            ack = frame[1]["ack"]
            if mode == "client-individual" and not draining and random.random() < 0.05:
                c.send_frame("NACK", [("id", ack)])
                with self.lock:
                    self.released[mode].add(body)
                continue
            unacked.append((ack, body))
            # client-individual settles one; client, cumulative, everything before it too.
            if mode == "client-individual" or len(unacked) >= 4 or draining:
                receipts += 1
                c.send_frame("ACK", [("id", ack), ("receipt", f"ack-{receipts}")])
                unconfirmed[f"ack-{receipts}"] = [b for _, b in unacked]
                unacked.clear()
        if mode == "auto" or draining or random.random() < 0.5:
            self.drain_and_disconnect(c, mode, unacked)
        else:
            with self.lock:  # dies holding them: the queue hands them out again
                self.released[mode].update(body for _, body in unacked)
                self.released[mode].update(b for bodies in unconfirmed.values() for b in bodies)
            c.close()
        return taken

    def drain_and_disconnect(self, c, mode, unacked):
        """DISCONNECT and read to its RECEIPT: what was written before it still counts."""
        c.send_frame("DISCONNECT", [("receipt", "bye")])
        while True:
            frame = c.frame(timeout=scaled(10))
            if frame[0] == "RECEIPT" and frame[1].get("receipt-id") == "bye":
                break
            if frame[0] == "RECEIPT" and frame[1].get("receipt-id", "").startswith("ack-"):
                continue  # an ACK's, before the DISCONNECT's: it was settled
            if frame[0] == "MESSAGE":
                body = frame[2].decode()
                with self.lock:
                    self.received[mode][body] = self.received[mode].get(body, 0) + 1
                    if mode != "auto":
                        self.released[mode].add(body)
            else:
                raise AssertionError(f"{mode} consumer before the DISCONNECT receipt: "
                                     f"{describe(frame)}")
        with self.lock:
            self.released[mode].update(body for _, body in unacked)
        c.close()

    def slow_reader(self):
        c = self.connect(rcvbuf=4 * KIB)
        c.send_frame("SUBSCRIBE", [("id", "room"), ("destination", room(0)), ("ack", "auto")])
        c.send_frame("SUBSCRIBE", [("id", "flood"), ("destination", "/topic/soak.flood"),
                                   ("ack", "auto")])
        try:
            while not self.stop.is_set():
                frame = c.frame(timeout=scaled(10))
                if frame[0] == "ERROR":
                    if "slow consumer" not in frame[1].get("message", ""):
                        raise AssertionError(f"slow reader: {describe(frame)}")
                    self.count("slow readers cut off")
                    return
                self.pause(0.05)
        except ConnectionError:
            self.count("slow readers cut off")
        finally:
            c.close()

    def flooder(self):
        c = self.connect()
        c.sock.settimeout(scaled(30))  # pushed back, not stuck: a send may wait, not forever
        body = b"f" * (256 * KIB)
        burst_ends = time.monotonic() + 2
        while time.monotonic() < burst_ends and not self.stop.is_set():
            c.publish("/topic/soak.flood", body)
            self.count("flood MiB", 0.25)
        c.publish_confirmed("/topic/soak.flood", b"end of burst")  # the flood was taken
        c.disconnect()
        self.pause(3)

    def transactions(self):
        c = self.connect()
        c.send_frame("BEGIN", [("transaction", "big")])
        # 16 of these fit in max_transaction_bytes, the 17th does not: the broker has read
        # everything sent when it answers, so its close cannot reset the ERROR away.
        chunk = b"t" * (63 * KIB)
        for _ in range(MIB // len(chunk) + 1):
            c.publish("/topic/soak.tx", chunk, headers=[("transaction", "big")])
        frame = c.frame(timeout=scaled(10))
        if frame[0] != "ERROR" or "transaction" not in frame[1].get("message", ""):
            raise AssertionError(f"a transaction past its budget: {describe(frame)}")
        c.close()
        self.count("transactions refused")
        c = self.connect()
        tx = uuid.uuid4().hex[:8]
        c.send_frame("BEGIN", [("transaction", tx)])
        for i in range(3):
            c.publish("/topic/soak.tx", f"{tx}-{i}", headers=[("transaction", tx)])
        c.send_frame("COMMIT", [("transaction", tx), ("receipt", "commit")])
        frame = c.frame()
        if frame[0] != "RECEIPT":
            raise BrokerError(frame)
        with self.lock:
            self.committed.append(tx)
        c.disconnect()
        self.pause(0.5)

    def half_frames(self):
        c = self.connect()
        c.send(b"SEND\ndestination:" + room(1).encode() + b"\ncontent-length:1000\n\nnot all")
        c.close()
        self.count("half frames")
        self.pause(0.2)

    def probe(self):
        started = time.monotonic()
        c = self.connect()
        try:
            token = uuid.uuid4().hex
            c.subscribe_replay("/topic/soak.probe", "p")
            c.publish_confirmed("/topic/soak.probe", token)
            frame = c.frame(timeout=scaled(10))
            if (frame[0], frame[2]) != ("MESSAGE", token.encode()):
                raise AssertionError(f"probe: {describe(frame)}")
        finally:
            c.disconnect()
        with self.lock:
            self.probes.append(time.monotonic() - started)
        self.pause(1)

    def sample_rss(self):
        self.rss.append(rss_mib(self.broker.proc.pid))
        self.pause(0.5)

    # --- the run and the reconciliation ------------------------------------------------------

    def run(self):
        baseline = rss_mib(self.broker.proc.pid)
        threads = [self.loop(f"publisher {i}", lambda i=i: self.publisher(i)) for i in range(2)]
        for i in range(3):
            last_seen = {}
            threads.append(self.loop(f"member {i}", lambda i=i, s=last_seen: self.member(i, s)))
        threads.append(self.loop("queue producer", self.queue_producer))
        for mode in MODES:
            for i in range(2):
                threads.append(self.loop(f"{mode} consumer {i}",
                                         lambda m=mode: self.consume(m, random.uniform(0.3, 2))))
        threads += [self.loop(f"slow reader {i}", self.slow_reader) for i in range(2)]
        threads += [self.loop("flooder", self.flooder), self.loop("transactions", self.transactions),
                    self.loop("half frames", self.half_frames), self.loop("probe", self.probe),
                    self.loop("rss", self.sample_rss)]
        self.stop.wait(self.seconds)
        self.stop.set()
        for t in threads:
            t.join(timeout=scaled(60))
            if t.is_alive():
                self.fail(f"{t.name} did not finish within {scaled(60):.0f} s of the end")
        if not self.failures:
            self.drain_queues()
            self.reconcile_rooms()
            self.reconcile_queues()
        self.check_limits(baseline)
        code, graceful = self.broker.stop(timeout=scaled(30))
        if not graceful or code != 0:
            self.failures.append(f"SIGTERM: exit code {code}, graceful={graceful}")
        self.failures += [f"sanitizer: {line}" for line in
                          sanitizer_reports(self.broker.log())]
        return self.report(baseline)

    def drain_queues(self):
        """After the traffic stops, consumers take what is left (bounded)."""
        for mode in MODES:
            deadline = time.monotonic() + scaled(60)
            while time.monotonic() < deadline:
                if self.consume(mode, scaled(5), draining=True) == 0:
                    break

    def stored(self, destination):
        """Every stored message of a destination as {x-seq: body}, paged through the admin
        API (x-replay keeps the newest when over its caps; this reads from the oldest)."""
        out, after = {}, 0
        name = urllib.parse.quote(destination, safe="")
        while True:
            url = (f"http://127.0.0.1:{self.broker.admin_port}/api/destinations/{name}"
                   f"/messages?after={after}&limit=1000")
            with urllib.request.urlopen(url, timeout=scaled(30)) as reply:
                page = json.load(reply)
            for m in page["messages"]:
                out[m["seq"]] = m.get("body")
            if not page["messages"] or page["messages"][-1]["seq"] >= page["head_seq"]:
                return out
            after = page["messages"][-1]["seq"]

    def reconcile_rooms(self):
        for r in range(ROOMS):
            stored, published = self.stored(room(r)), self.published[r]
            if stored != published:
                lost = sorted(set(published) - set(stored))[:5]
                extra = sorted(set(stored) - set(published))[:5]
                wrong = [s for s in published if s in stored and stored[s] != published[s]]
                self.failures.append(f"{room(r)}: {len(published)} receipted, {len(stored)} "
                                     f"stored; lost x-seq {lost}, unexpected {extra}, "
                                     f"wrong body {wrong[:5]}")
        bodies = list(self.stored("/topic/soak.tx").values())
        if any(b.startswith("ttt") for b in bodies):
            self.failures.append("a refused transaction's SENDs reached the journal")
        for tx in self.committed:
            if [b for b in bodies if b.startswith(tx + "-")] != [f"{tx}-{i}" for i in range(3)]:
                self.failures.append(f"committed transaction {tx} is not whole and in order")

    def reconcile_queues(self):
        for mode in MODES:
            received, queued = self.received[mode], self.queued[mode]
            lost = queued - set(received)
            twice = {b for b, n in received.items() if n > 1} - self.released[mode]
            if lost:
                self.failures.append(f"/queue/soak.{mode}: {len(lost)} of {len(queued)} "
                                     f"receipted messages never delivered, e.g. {sorted(lost)[:5]}")
            if twice:
                self.failures.append(f"/queue/soak.{mode}: delivered twice though settled: "
                                     f"{sorted(twice)[:5]}")

    def check_limits(self, baseline):
        if self.probes and max(self.probes) > PROBE_LIMIT_S:
            slow = sum(p > PROBE_LIMIT_S for p in self.probes)
            self.failures.append(f"probe round trip up to {max(self.probes):.2f} s "
                                 f"({slow} of {len(self.probes)} over {PROBE_LIMIT_S:.1f} s)")
        if not self.probes:
            self.failures.append("no probe completed")
        if self.rss and max(self.rss) > baseline + RSS_GROWTH_LIMIT_MIB:
            self.failures.append(f"RSS reached {max(self.rss):.0f} MiB, {baseline:.0f} at the "
                                 f"start (limit +{RSS_GROWTH_LIMIT_MIB} MiB)")

    def report(self, baseline):
        stored = sum(len(p) for p in self.published.values())
        queued = {m: len(self.queued[m]) for m in MODES}
        print(f"soak: {self.seconds:.0f} s; {stored} receipted room messages, queued {queued}, "
              f"{len(self.committed)} committed transactions; "
              + ", ".join(f"{k} {v:g}" for k, v in sorted(self.counts.items())))
        if self.probes:
            print(f"probe: {len(self.probes)} round trips, median "
                  f"{statistics.median(self.probes) * 1000:.1f} ms, max "
                  f"{max(self.probes) * 1000:.1f} ms")
        if self.rss:
            print(f"RSS: {baseline:.0f} MiB at the start, median {statistics.median(self.rss):.0f}, "
                  f"max {max(self.rss):.0f}, last {self.rss[-1]:.0f}")
        if self.failures:
            print("FAILED:\n  " + "\n  ".join(self.failures))
            print(self.broker.log()[-20000:])
        self.broker.cleanup()
        return 1 if self.failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("STOMPD_SOAK_SECONDS") or 60))
    parser.add_argument("--rate", type=float, default=100,
                        help="SENDs per second of each paced publisher")
    args = parser.parse_args()
    return Soak(args.seconds, args.rate).run()


if __name__ == "__main__":
    sys.exit(main())
