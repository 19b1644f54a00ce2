"""A real local cluster for the Python SDK tests: one ferry-coord and three ferryd processes on
loopback, each ferryd with its own socket in a temporary directory (the flags are those of
tests/integration/local_cluster.cc). Started once per session, stopped with signals."""
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

import ferry  # run_pytest.py (the ctest entry) skips the suite when this fails

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("FERRY_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BIN_DIR = os.environ.get("FERRY_BIN_DIR") or os.path.join(SOURCE_DIR, "build", "bin")
NODES = 3


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork


def _die_with_parent():
    """In the child: SIGKILL it if pytest dies (PR_SET_PDEATHSIG)."""
    _prctl(1, signal.SIGKILL)


def _port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _listening(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class LocalCluster:
    def __init__(self, nodes=NODES, arena="64MiB"):
        self.nodes = nodes
        self.arena = arena
        self.dir = tempfile.mkdtemp(prefix="ferry-pytest.")
        self.port = 0
        self.coord = None
        self.ferryds = []

    def socket(self, i):
        return os.path.join(self.dir, f"n{i}.sock")

    @property
    def sockets(self):
        return [self.socket(i) for i in range(self.nodes)]

    def connect(self, i, **kwargs):
        return ferry.connect(self.socket(i), **kwargs)

    def _spawn(self, argv, log):
        env = dict(os.environ)
        env.setdefault("UCX_TLS", "tcp,self")
        env.setdefault("UCX_NET_DEVICES", "lo")
        env.setdefault("UCX_WARN_UNUSED_ENV_VARS", "n")
        with open(os.path.join(self.dir, log), "ab") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    preexec_fn=_die_with_parent)

    def _log_tail(self, log):
        try:
            with open(os.path.join(self.dir, log), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def start(self):
        coord_bin = os.path.join(BIN_DIR, "ferry-coord")
        ferryd_bin = os.path.join(BIN_DIR, "ferryd")
        for b in (coord_bin, ferryd_bin):
            if not os.access(b, os.X_OK):
                pytest.exit(f"python.sdk: {b} is not built (set FERRY_BIN_DIR)", returncode=1)
        # Below Linux's ephemeral range, as local_cluster.cc does; retried if ferry-coord exits
        # (the port was taken after all).
        for _ in range(8):
            self.port = random.randint(20000, 31999)
            if not _port_free(self.port):
                continue
            self.coord = self._spawn([coord_bin, "--listen", f"127.0.0.1:{self.port}",
                                      "--liveness-ms", "4000", "--heartbeat-ms", "200"],
                                     "coord.log")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.coord.poll() is None:
                if _listening(self.port):
                    break
                time.sleep(0.02)
            if self.coord.poll() is None and _listening(self.port):
                break
            self._stop(self.coord)
            self.coord = None
        if self.coord is None:
            raise RuntimeError(f"ferry-coord did not start; log: {self._log_tail('coord.log')}")
        for i in range(self.nodes):
            self.ferryds.append(self._spawn(
                [ferryd_bin, "--name", f"n{i}", "--coord", f"127.0.0.1:{self.port}",
                 "--socket", self.socket(i), "--arena", self.arena, "--log-level", "info"],
                f"n{i}.log"))
        self.wait_alive(self.nodes, timeout=60)

    def wait_alive(self, n, timeout):
        """Polls node 0 until it sees `n` alive nodes (registration has no event to wait on)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for i, p in enumerate(self.ferryds):
                if p.poll() is not None:
                    raise RuntimeError(f"ferryd n{i} exited with {p.returncode}: "
                                       f"{self._log_tail(f'n{i}.log')}")
            try:
                with self.connect(0, rpc_timeout=5) as c:
                    st = c.status()
                    if st.coordinator_connected and len(st.alive_nodes) == n:
                        return
                    last = f"{len(st.alive_nodes)} alive"
            except ferry.FerryError as e:
                last = str(e)
            time.sleep(0.1)
        raise RuntimeError(f"cluster in {self.dir} did not reach {n} alive nodes ({last})")

    @staticmethod
    def _stop(p):
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=4)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)

    def stop(self):
        for p in self.ferryds:
            self._stop(p)
        self._stop(self.coord)
        if not os.environ.get("FERRY_KEEP_TEST_DIR"):
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster():
    c = LocalCluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def clients(cluster):
    """One connected client per node, closed after the test."""
    cs = [cluster.connect(i) for i in range(cluster.nodes)]
    yield cs
    for c in cs:
        c.close()


@pytest.fixture
def key(request):
    """A key no other test uses."""
    return f"{request.node.name}-{uuid.uuid4().hex[:8]}"
