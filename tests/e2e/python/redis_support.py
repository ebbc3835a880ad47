"""A real redis-server for an end-to-end test: its own free loopback port and its own
directory, never the system service (the Python twin of tests/support/redis_server.hpp).

The binary is STOMPD_REDIS_SERVER, else /usr/bin/redis-server (Debian's redis-server,
installed by scripts/install-deps test). Without it RedisServer() raises an AssertionError
naming what to install, so the test fails: a cluster test that quietly did not run would
look like one that passed.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from stompd_harness import scaled

DEFAULT_BINARY = "/usr/bin/redis-server"


def redis_binary():
    path = os.environ.get("STOMPD_REDIS_SERVER") or DEFAULT_BINARY
    if not os.path.exists(path):
        raise AssertionError(f"no redis-server at {path}: run scripts/install-deps test "
                             f"(Debian's redis-server), or set STOMPD_REDIS_SERVER")
    return path


def free_port():
    """A port the kernel just gave out and took back: free unless someone races us for it
    (RedisServer then tries another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers_ping(port, timeout=1.0):
    """True when something on 127.0.0.1:port answers a raw PING with +PONG (or, with
    requirepass, refuses it for want of AUTH: the server is up)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            answer = s.recv(16)
            return answer.startswith(b"+PONG") or answer.startswith(b"-NOAUTH")
    except OSError:
        return False


def _read_reply(reader):
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise AssertionError(f"Redis closed the connection mid-reply: {line!r}")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise AssertionError(f"Redis error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else reader.read(n + 2)[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(reader) for _ in range(n)]
    raise AssertionError(f"unexpected Redis reply {line!r}")


class RedisServer:
    """One redis-server process: .address ("127.0.0.1:PORT"), .kill() (SIGKILL, the
    directory stays), .restart(empty=False) on the same port, .cleanup().

    appendonly: keep an AOF in the directory (with appendfsync always, every write reaches
    the disk before Redis answers it), so a kill -9 loses nothing Redis acknowledged. Without
    it nothing is persisted (--save "" too): a restart starts empty."""

    ATTEMPTS = 5  # fresh ports to try when the one picked was taken before redis bound it

    def __init__(self, appendonly=False, extra_args=()):
        self.binary = redis_binary()
        self.dir = tempfile.mkdtemp(prefix="stompd-e2e-redis-")
        self.args = ["--appendonly", "yes" if appendonly else "no"]
        if appendonly:
            self.args += ["--appendfsync", "always"]
        self.args += list(extra_args)
        self.proc = None
        self.port = None
        try:
            for _ in range(self.ATTEMPTS):
                self.port = free_port()
                if self._start():
                    return
            raise AssertionError(f"redis-server did not start on a free port\n{self.log()}")
        except BaseException:
            self.cleanup()
            raise

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _start(self):
        """Starts it on self.port and self.dir; True once it answers PING, False when it
        exited (the port was taken?)."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--logfile", os.path.join(self.dir, "redis.log"), "--save", "",
                "--daemonize", "no", *self.args]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.dir)
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline:
            if answers_ping(self.port):
                return True
            if self.proc.poll() is not None:
                self.proc = None
                return False
            time.sleep(0.02)  # polling a process start
        self.kill()
        raise AssertionError(f"redis-server on port {self.port} did not answer PING within "
                             f"{scaled(10):.0f} s\n{self.log()}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, as a crash: no shutdown, the directory (and its AOF) stays."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def restart(self, empty=False):
        """Kills it if running and starts it again on the same port and directory; empty:
        on an emptied directory, as a Redis that lost its data."""
        self.kill()
        if empty:
            for name in os.listdir(self.dir):
                path = os.path.join(self.dir, name)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
        if not self._start():
            raise AssertionError(f"redis-server did not restart on port {self.port}\n{self.log()}")

    def command(self, *args):
        """Runs one command over a fresh connection (RESP, enough for integers, strings and
        flat arrays) and returns its reply; an error reply raises AssertionError."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=scaled(5)) as s:
            out = f"*{len(args)}\r\n".encode()
            for a in args:
                a = a.encode() if isinstance(a, str) else a
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            reader = s.makefile("rb")
            return _read_reply(reader)

    def log(self, tail=4000):
        try:
            with open(os.path.join(self.dir, "redis.log"), errors="replace") as f:
                text = f.read()
        except OSError:
            text = "(no redis.log)"
        return f"--- redis.log ---\n{text[-tail:]}--- end of redis.log ---"

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
