"""Fixtures of the Python client's tests: real rtnq-server processes on 127.0.0.1 (port 0, read
back), the rtnq CLI, and synthetic checkpoints. RTNQ_BUILD_DIR points at the CMake build."""

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

BUILD = Path(os.environ.get("RTNQ_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
SERVER_BIN = BUILD / "server" / "rtnq-server"
CLI_BIN = BUILD / "client" / "rtnq"


class Server:
    """One rtnq-server subprocess."""

    def __init__(self, workdir: Path, *args):
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        port_file = workdir / "port"
        self.log_path = workdir / "server.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(SERVER_BIN), "--listen", "127.0.0.1:0", "--port_file", str(port_file),
             "--metrics_listen", "127.0.0.1:0", "--threads", "1", *args],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = self.log_path.read_text()
            m = re.search(r"port=(\d+) metrics_port=(\d+)", text)
            if m:
                self.port, self.metrics_port = int(m.group(1)), int(m.group(2))
                self.address = f"127.0.0.1:{self.port}"
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"rtnq-server did not start: {self.log_path.read_text()}")

    def metric(self, name: str) -> float:
        """Sum of a metric's samples on /metrics."""
        text = urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_metric(self, name, want, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            got = self.metric(name)
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


@pytest.fixture
def make_server(tmp_path):
    """Starts extra servers with flags; all are stopped at the end of the test."""
    started = []

    def make(*args):
        s = Server(tmp_path / f"server{len(started)}", *args)
        started.append(s)
        return s
    yield make
    for s in started:
        s.stop()


def cli(*args, check=True):
    return subprocess.run([str(CLI_BIN), *map(str, args)], check=check, capture_output=True,
                          text=True)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A synthetic Llama-shaped HF checkpoint (rtnq synth --shape tiny, bf16 weights)."""
    d = tmp_path_factory.mktemp("synth") / "tiny"
    cli("synth", "-o", d, "--shape", "tiny")
    return d


def read_safetensors(path):
    """{name: numpy array} and the metadata of a safetensors file (BF16 as uint16)."""
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    dtypes = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I32": np.int32,
              "I64": np.int64, "I8": np.int8, "U8": np.uint8}
    base = 8 + n
    out = {}
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(raw[base + a:base + b], dtype=dtypes[e["dtype"]]).reshape(
            e["shape"]).copy()
    return out, meta


def same_tree(a: Path, b: Path):
    """The two directories hold the same files with the same bytes."""
    names_a = sorted(p.name for p in a.iterdir())
    names_b = sorted(p.name for p in b.iterdir())
    assert names_a == names_b
    for name in names_a:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture
def fresh(tmp_path):
    """A path that does not exist yet, inside the test's directory."""
    counter = iter(range(1000))

    def make(stem="out"):
        return tmp_path / f"{stem}{next(counter)}"
    return make


def remove(path):
    shutil.rmtree(path, ignore_errors=True)
