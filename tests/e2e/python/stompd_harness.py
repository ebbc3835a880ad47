"""Starts the real stompd binary for a test class and stops it again.

The binary comes from STOMPD_BIN (CTest sets it to $<TARGET_FILE:stompd>). Each broker gets
ephemeral loopback ports, a fresh data directory and, when asked, a temporary YAML config; the
bound ports are read from its "listening transport=... address=HOST:PORT" log lines. stderr is
kept for failure messages.
"""

import base64
import hashlib
import http.client
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

# Deadlines scale with STOMPD_E2E_TIME_SCALE (e.g. 3 for a sanitizer build on a busy machine).
TIME_SCALE = float(os.environ.get("STOMPD_E2E_TIME_SCALE", "1") or "1")


def scaled(seconds):
    return seconds * TIME_SCALE


# TLS listeners log transport=tcp+tls / websocket+tls; they are filed under tcp / websocket.
_LISTENING = re.compile(r"listening transport=(\w+)(?:\+tls)? address=([0-9.]+):(\d+)")


def unique(name):
    """A destination name no other test (or earlier run on the same journal) uses."""
    return f"{name}.{uuid.uuid4().hex[:8]}"


def pbkdf2_hash(passcode, iterations=10_000):
    """The encoding stompd accepts: pbkdf2-sha256$<iterations>$<base64 salt>$<base64 key>."""
    salt = os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha256", passcode.encode(), salt, iterations, 32)
    return (f"pbkdf2-sha256${iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(key).decode()}")


def sanitizer_reports(stderr):
    """The lines of a sanitizer build's stderr that report a finding."""
    return [line for line in stderr.splitlines()
            if "ERROR: AddressSanitizer" in line or "ERROR: LeakSanitizer" in line
            or "WARNING: ThreadSanitizer" in line or "runtime error:" in line]


def rss_mib(pid):
    """Resident memory of a process, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def asan_small_quarantine():
    """Environment for a broker whose RSS should mean something: ASan keeps freed memory in a
    quarantine of up to 256 MiB before reusing it, which makes RSS climb with traffic and
    hides a real leak. (Options given later in ASAN_OPTIONS win, so this goes first.)"""
    return {"ASAN_OPTIONS": ":".join(
        filter(None, ["quarantine_size_mb=16", os.environ.get("ASAN_OPTIONS", "")]))}


def _yaml_scalar(value):
    if isinstance(value, bool):  # before str(): Python's True is not YAML 1.2's true
        return "true" if value else "false"
    return str(value)


def to_yaml(obj, indent=""):
    """A YAML document from nested dicts of scalars and lists of scalars or dicts, enough for
    stompd's config keys. Scalars are written plain: keep them free of ': ' and ' #'."""
    out = ""
    for key, value in obj.items():
        if isinstance(value, dict):
            out += f"{indent}{key}:\n" + to_yaml(value, indent + "  ")
        elif isinstance(value, list):
            out += f"{indent}{key}:" + ("\n" if value else " []\n")
            for item in value:
                if isinstance(item, dict):
                    # "- " then the map's first key on the same line, the rest under it.
                    out += f"{indent}  - " + to_yaml(item, indent + "    ")[len(indent) + 4:]
                else:
                    out += f"{indent}  - {_yaml_scalar(item)}\n"
        else:
            out += f"{indent}{key}: {_yaml_scalar(value)}\n"
    return out


# The development config scripts/run uses, with its guest/guest user.
SHIPPED_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                              "conf", "stompd.yaml")


def readyz(broker):
    """(status, body) of the broker's GET /readyz, or (None, why) when its admin port does not
    answer."""
    conn = http.client.HTTPConnection("127.0.0.1", broker.admin_port, timeout=scaled(5))
    try:
        conn.request("GET", "/readyz")
        reply = conn.getresponse()
        return reply.status, reply.read().decode("utf-8", "replace")
    except OSError as e:
        return None, repr(e)
    finally:
        conn.close()


def metric(broker, name):
    """One unlabelled sample of the broker's /metrics, as a number."""
    conn = http.client.HTTPConnection("127.0.0.1", broker.admin_port, timeout=scaled(5))
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics:\n{text}")


def stop_all(brokers, killed=()):
    """Stops every broker (SIGTERM) and removes its files; raises AssertionError naming each
    one that did not exit 0 gracefully or whose sanitizer build reported something. Those
    whose index is in `killed` were SIGKILLed on purpose: only their reports count."""
    problems = []
    for k, broker in enumerate(brokers):
        code, graceful = (-9, True) if k in killed else broker.stop()
        log = broker.log()
        broker.cleanup()
        reports = sanitizer_reports(log)
        if reports or not graceful or (code != 0 and k not in killed):
            problems.append(f"broker {k}: exit code {code}, graceful={graceful}, sanitizer "
                            f"reports {reports}\n{log}")
    if problems:
        raise AssertionError("\n".join(problems))


class Broker:
    """One stompd process: Broker.start(config={...}), .tcp_port, .ws_port, .stop()."""

    def __init__(self, proc, workdir, args):
        self.proc = proc
        self.workdir = workdir
        self.args = args
        self.listeners = {}
        self._stderr = []
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    @staticmethod
    def binary():
        binary = os.environ.get("STOMPD_BIN")
        if not binary:
            raise RuntimeError("STOMPD_BIN is not set: run these tests through CTest, or set it "
                               "to the stompd binary (e.g. build/asan/broker/stompd)")
        if not os.path.exists(binary):
            raise RuntimeError(f"STOMPD_BIN={binary} does not exist")
        return os.path.abspath(binary)

    @classmethod
    def start(cls, config=None, tcp="127.0.0.1:0", ws="127.0.0.1:0", data_dir=None,
              log_level="info", admin="127.0.0.1:0", env=None, preexec_fn=None,
              config_file=None, extra_args=None):
        """config_file: a YAML file used as it is instead of `config` (SHIPPED_CONFIG); the
        flags set ports and data either way. data_dir: reuse the data directory of an earlier broker (restart tests); its parent
        is the work directory, removed by cleanup() once, after the last restart.
        log_level: --log-level. env: variables added to (or replacing) the inherited ones.
        preexec_fn: run in the child before stompd starts (e.g. to lower its rlimits).
        extra_args: more command-line arguments, appended after the ones above (e.g.
        ["--redis", "127.0.0.1:6379"]); not a flag this already passes (--tcp, --ws, --admin,
        --data, --log-level, --config)."""
        binary = cls.binary()
        if data_dir:
            data = data_dir
            workdir = os.path.dirname(os.path.abspath(data_dir))
        else:
            workdir = tempfile.mkdtemp(prefix="stompd-e2e-py-")
            data = os.path.join(workdir, "data")
        os.makedirs(data, exist_ok=True)
        # The admin listener gets a free port too, so parallel tests never collide.
        args = [binary, "--tcp", tcp, "--ws", ws, "--admin", admin, "--data", data,
                "--log-level", log_level]
        if config_file:
            args += ["--config", config_file]
        if config:
            path = os.path.join(workdir, "stompd.yaml")
            with open(path, "w") as f:
                f.write(to_yaml(config))
            args += ["--config", path]
        args += list(extra_args or [])
        # cwd: stompd reads conf/stompd.yaml from its working directory without --config.
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd=workdir,
                                env=None if env is None else {**os.environ, **env},
                                preexec_fn=preexec_fn)
        broker = cls(proc, workdir, args)
        broker.data_dir = data
        try:
            broker._wait_listening(scaled(10))
        except Exception:
            broker.stop()
            broker.cleanup()
            raise
        return broker

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self._stderr.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _wait_listening(self, timeout, transports=("tcp", "websocket")):
        deadline = time.monotonic() + timeout
        while not all(t in self.listeners for t in transports):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"stompd did not report {' and '.join(transports)} listeners "
                                   f"within {timeout:.0f} s "
                                   f"(args: {' '.join(self.args)})\n{self.log()}")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait()
                raise RuntimeError(f"stompd exited early with code {self.proc.returncode} "
                                   f"(args: {' '.join(self.args)})\n{self.log()}")
            m = _LISTENING.search(line)
            if m:
                self.listeners[m.group(1)] = (m.group(2), int(m.group(3)))

    @property
    def tcp_port(self):
        return self.listeners["tcp"][1]

    @property
    def ws_port(self):
        return self.listeners["websocket"][1]

    @property
    def admin_port(self):
        """The admin listener's port (it is logged after the STOMP listeners: waits for it)."""
        if "admin" not in self.listeners:
            self._wait_listening(scaled(10), ("admin",))
        return self.listeners["admin"][1]

    def log(self):
        return "--- stompd stderr ---\n" + "".join(self._stderr) + "--- end of stderr ---"

    def stop(self, timeout=None):
        """SIGTERM and wait. Returns (exit code, graceful); graceful is False if it was killed."""
        timeout = scaled(10) if timeout is None else timeout
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return self.proc.returncode, False
        self._reader.join(timeout=scaled(5))
        self._close_stderr()
        return self.proc.returncode, True

    def _close_stderr(self):
        if not self._reader.is_alive():
            self.proc.stderr.close()

    def kill(self):
        """SIGKILL: a crash, with no shutdown and no journal flush. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=scaled(5))
        self._close_stderr()
        return self.proc.returncode

    def cleanup(self):
        shutil.rmtree(self.workdir, ignore_errors=True)


class RawStomp:
    """A STOMP client over a plain socket for what stomp.py hides: exact frames and timing."""

    def __init__(self, port, host="127.0.0.1", rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # before connect, so the TCP window is negotiated small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(scaled(5))
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.heartbeats = []  # monotonic arrival times of EOLs between frames

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, command, headers=(), body=b""):
        head = command + "\n" + "".join(f"{k}:{v}\n" for k, v in headers) + "\n"
        self.send(head.encode() + body + b"\0")

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from the broker in time")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        self.buf += chunk

    def read_frame(self, timeout=None):
        """The next frame as (command, headers dict, body); EOLs before it are heart-beats."""
        deadline = time.monotonic() + (scaled(5) if timeout is None else timeout)
        while True:
            while self.buf[:1] in (b"\n", b"\r"):
                if self.buf[:2] == b"\r\n":
                    self.buf = self.buf[2:]
                elif self.buf[:1] == b"\n":
                    self.buf = self.buf[1:]
                else:
                    break
                self.heartbeats.append(time.monotonic())
            end = self.buf.find(b"\n\n")
            if end >= 0 and self.buf[:1] not in (b"\n", b"\r"):
                lines = self.buf[:end].decode().split("\n")
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers.setdefault(k, v)
                start = end + 2
                if "content-length" in headers:
                    n = int(headers["content-length"])
                    if len(self.buf) >= start + n + 1:
                        body = self.buf[start:start + n]
                        self.buf = self.buf[start + n + 1:]
                        return lines[0], headers, body
                else:
                    nul = self.buf.find(b"\0", start)
                    if nul >= 0:
                        body = self.buf[start:nul]
                        self.buf = self.buf[nul + 1:]
                        return lines[0], headers, body
            self._fill(deadline)

    def wait_closed(self, timeout):
        """Seconds until the broker closed the connection, or None if it stayed open."""
        start = time.monotonic()
        deadline = start + timeout
        try:
            while True:
                self._fill(deadline)
                self.read_available()
        except (ConnectionError, OSError) as e:
            if isinstance(e, TimeoutError) or isinstance(e, socket.timeout):
                return None
            return time.monotonic() - start

    def read_available(self):
        """Counts heart-beats in what was read; frames are kept for read_frame()."""
        while self.buf[:1] == b"\n":
            self.buf = self.buf[1:]
            self.heartbeats.append(time.monotonic())

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
