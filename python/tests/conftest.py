"""A devnet of real processes for the SDK's tests: ``ogpu devnet`` with 3 validators and
3 provider agents on loopback, and a client holding its funded demo key.

The ``ogpu`` binary is ``OGPU_BIN``, or the workspace's ``target/debug/ogpu``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import ogpu

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"


def ogpu_bin() -> str:
    binary = os.environ.get("OGPU_BIN") or str(REPO / "target" / "debug" / "ogpu")
    if not Path(binary).is_file():
        pytest.fail(f"no ogpu binary at {binary}: build it (cargo build -p ogpu-cli) or set OGPU_BIN")
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Devnet:
    def __init__(self, data: Path) -> None:
        port = free_port()
        self.api = f"http://127.0.0.1:{port}"
        self.data = data
        self.log = open(data / "devnet.log", "wb")
        self.process = subprocess.Popen(
            [ogpu_bin(), "devnet", "--dashboard", "127.0.0.1:0", "--validators", "3", "--providers", "3", "--api", f"127.0.0.1:{port}",
             "--data", str(data / "net")],
            stdout=self.log, stderr=subprocess.STDOUT)

    def client(self) -> ogpu.Client:
        return ogpu.Client(api=self.api, key=self.data / "net" / "client.key", password="")

    def wait_ready(self, timeout: float = 180) -> None:
        """Until three providers are staked: before that no auction has bidders."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"ogpu devnet exited with {self.process.returncode}; see {self.log.name}")
            try:
                staked = [p for p in ogpu.Client(api=self.api).providers()
                          if float(p["stake"]) >= 500]
                if len(staked) == 3:
                    return
            except ogpu.OgpuError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the devnet had no three staked providers after {timeout} s")
            time.sleep(0.5)

    def stop(self) -> None:
        # Ctrl-C: the devnet stops every validator and provider it started.
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="session")
def devnet(tmp_path_factory):
    net = Devnet(tmp_path_factory.mktemp("devnet"))
    try:
        net.wait_ready()
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="session")
def client(devnet) -> ogpu.Client:
    return devnet.client()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"the shared data set is not at {SHARED}")
    return SHARED
