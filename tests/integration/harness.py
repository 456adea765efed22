"""harness.py: start the real `carlarl serve` on an ephemeral loopback port and talk HTTP to it.

Used by every integration test. Only the Python standard library (plus Debian's python3-h2 for
the HTTP/2 tests) is needed. The server binary comes from $CARLARL_BIN (set by ctest).
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import unittest

BIN = os.environ.get("CARLARL_BIN", os.path.join(os.path.dirname(__file__), "../../build/carlarl"))
ASAN_BIN = os.environ.get("CARLARL_ASAN_BIN") or ""
DATA = os.environ.get("CRL_TEST_DATA", os.path.join(os.path.dirname(__file__), "../data"))
EXAMPLE_ARTIFACT = os.path.join(DATA, "artifacts", "v0.1.0")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

ONE_OBS = {"observations": [{"speed": 25.5, "steering": 0.1, "sensors": [0.8, 0.2, 0.5]}],
           "deterministic": True}


class Server:
    """A running carlarl process. Use as a context manager; stop() returns the exit code."""

    def __init__(self, env=None, args=(), binary=None, workers=2, artifact_dir=None):
        self.binary = binary or BIN
        self.env = dict(os.environ)
        self.env.pop("MODEL_VERSION", None)
        self.env["ARTIFACT_DIR"] = artifact_dir or os.path.join(tempfile.gettempdir(),
                                                                "carlarl-no-artifacts-%d" % os.getpid())
        self.env["WORKERS"] = str(workers)
        self.env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:halt_on_error=1"
        self.env["LSAN_OPTIONS"] = "suppressions=" + os.path.join(os.path.dirname(
            os.path.abspath(__file__)), "lsan.supp")
        self.env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
        self.env.update(env or {})
        self.args = list(args)
        self.proc = None
        self.port = None
        self.log_lines = []
        self._log_lock = threading.Lock()

    def start(self, timeout=20.0):
        self.proc = subprocess.Popen([self.binary, "serve", "--port", "0", "--host", "127.0.0.1"]
                                     + self.args, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                with self._log_lock:
                    self.log_lines.append(line)
                m = re.search(r"listening on http://[^ ]*:(\d+)/", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        if not ready.wait(timeout) or self.port is None:
            self.kill()
            raise AssertionError("server did not start:\n" + self.log())
        return self

    def log(self):
        with self._log_lock:
            return "".join(self.log_lines)

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        """One request; returns (status, headers dict lower-cased, body bytes)."""
        own = conn is None
        c = conn or self.conn()
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            c.request(method, path, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            if own:
                c.close()

    def json(self, method, path, body=None, headers=None, conn=None):
        st, h, data = self.request(method, path, body, headers, conn)
        return st, h, json.loads(data) if data else None

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError("server did not exit within %.0fs of the signal" % timeout)
        self._pump.join(5)
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def alive(self):
        return self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


def h2_request(port, method, path, body=b"", headers=(), keep=False):
    """One HTTP/2 (prior knowledge) request; returns (status, headers, body), and with keep=True
    the connection's socket, still open, as a fourth item. Needs Debian's python3-h2."""
    import h2.config
    import h2.connection
    import h2.events
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    hdrs = [(":method", method), (":path", path), (":scheme", "http"),
            (":authority", "127.0.0.1:%d" % port)] + list(headers)
    c.send_headers(sid, hdrs, end_stream=not body)
    if body:
        c.send_data(sid, body, end_stream=True)
    s.sendall(c.data_to_send())
    status, rh, data, done = None, {}, b"", False
    while not done:
        chunk = s.recv(65536)
        if not chunk:
            break
        for ev in c.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                rh = {k.decode(): v.decode() for k, v in ev.headers}
                status = int(rh[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                done = True
        s.sendall(c.data_to_send())
    if keep:
        return status, rh, data, s
    s.close()
    return status, rh, data


def copy_example(root, version="v0.1.0", name=None):
    """Copies the committed example artifact to root/<version>, rewriting the card's version."""
    dst = os.path.join(root, name or version)
    shutil.copytree(EXAMPLE_ARTIFACT, dst)
    card = os.path.join(dst, "model_card.yaml")
    with open(card) as f:
        text = f.read()
    text = re.sub(r"(?m)^version:.*$", "version: %s" % version, text)
    with open(card, "w") as f:
        f.write(text)
    return dst


def main():
    unittest.main(verbosity=2)
