#!/usr/bin/env python3
"""Measures the broker's memory per idle STOMP-over-WebSocket connection.

Opens N WebSocket connections to a broker on loopback, sends CONNECT on each (with
heart-beats, as real clients do), waits for every CONNECTED, then reads the broker's
resident memory from /proc/PID/status. Reports (RSS with N connections - RSS before) / N.
Standard library only; every wait has a deadline.

  bench/idle_connections.py --port 15674 --pid $(pidof stompd) --connections 10000
"""
import argparse
import base64
import json
import os
import resource
import selectors
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def ws_frame(payload: bytes) -> bytes:
    # A client-to-server text frame: FIN, opcode 1, masked (RFC 6455 5.3).
    mask = os.urandom(4)
    n = len(payload)
    header = bytes([0x81])
    if n < 126:
        header += bytes([0x80 | n])
    else:
        header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/ws")
    ap.add_argument("--pid", type=int, required=True, help="the broker's PID, for its RSS")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--hold-seconds", type=float, default=5.0)
    ap.add_argument("--heart-beat", default="10000,10000")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        sys.exit("idle_connections: loopback addresses only")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.connections + 64 > hard:
        sys.exit(f"idle_connections: open-file limit {hard} is below {args.connections}")

    before = rss_kib(args.pid)
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: v12.stomp\r\n\r\n").encode()
    connect = ws_frame(f"CONNECT\naccept-version:1.2\nhost:localhost\n"
                       f"heart-beat:{args.heart_beat}\n\n\0".encode())

    sel = selectors.DefaultSelector()
    socks, state = [], {}
    deadline = time.monotonic() + 120
    started = time.monotonic()
    # Connect in batches so the listen backlog never overflows.
    pending = args.connections
    connected = 0
    while (pending or connected < len(socks)) and time.monotonic() < deadline:
        while pending and len(socks) - connected < 500:
            s = socket.create_connection((args.host, args.port), timeout=10)
            s.setblocking(False)
            s.sendall(upgrade)
            state[s] = b""
            sel.register(s, selectors.EVENT_READ)
            socks.append(s)
            pending -= 1
        for k, _ in sel.select(timeout=1):
            s = k.fileobj
            data = s.recv(65536)
            if not data:
                sys.exit("idle_connections: broker closed a connection")
            buf = state[s] + data
            if b"\r\n\r\n" in buf and not buf.startswith(b"done"):
                head, _, rest = buf.partition(b"\r\n\r\n")
                if b" 101 " not in head.split(b"\r\n")[0]:
                    sys.exit(f"idle_connections: handshake refused: {head[:80]!r}")
                s.sendall(connect)
                buf = b"sent" + rest
            if buf.startswith(b"sent") and b"CONNECTED" in buf:
                sel.unregister(s)
                connected += 1
                buf = b"done"
            state[s] = buf
    if connected < args.connections:
        sys.exit(f"idle_connections: only {connected} of {args.connections} connected")
    setup_s = time.monotonic() - started
    time.sleep(args.hold_seconds)  # let the broker settle (heart-beat timers armed, etc.)
    after = rss_kib(args.pid)
    result = {
        "connections": args.connections,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": round((after - before) / args.connections, 2),
        "setup_seconds": round(setup_s, 2),
    }
    for s in socks:
        s.close()
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['connections']} idle WebSocket sessions: broker RSS "
              f"{before} KiB -> {after} KiB, {result['kib_per_connection']} KiB per connection "
              f"(connected in {result['setup_seconds']} s)")


if __name__ == "__main__":
    main()
