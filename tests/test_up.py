"""`cairn up` on a fresh data directory: serves the API, and data survives a restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cairn.streams.server import free_port


def start(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env |= {"CAIRN_DATA_DIR": str(data), "CAIRN_PORT": str(port)}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "cairn.api.cli", "up"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip


def wait_ready(base: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("cairn up did not become ready")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0


def test_up_serves_and_keeps_data_across_restart(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "up.log"
    base = f"http://127.0.0.1:{port}"
    process = start(tmp_path / "data", port, log)
    try:
        wait_ready(base)
        assert httpx.get(base + "/healthz").json() == {"status": "ok"}
        token = re.search(r"admin token .*: (cairn_\S+)", log.read_text())
        assert token, log.read_text()
        auth = {"Authorization": f"Bearer {token[1]}"}
        assert httpx.get(base + "/api/v2/projects").status_code == 401
        body = {"title": "survive", "task_type": "chore", "priority": 1}
        created = httpx.post(base + "/api/v2/tasks", headers=auth, json=body)
        assert created.status_code == 201, created.text
        # The scheduler and the local worker run too: a job goes all the way through.
        job = httpx.post(
            base + "/api/queue/jobs", headers=auth, json={"type": "noop", "payload": {}}
        )
        assert job.status_code == 201, job.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = httpx.get(base + f"/api/queue/jobs/{job.json()['id']}", headers=auth).json()
            if got["status"] == "succeeded":
                break
            time.sleep(0.1)
        assert got["status"] == "succeeded" and got["workerId"] == "local-1" and got["attempt"] == 1
    finally:
        stop(process)
    process = start(tmp_path / "data", port, log)
    try:
        wait_ready(base)
        got = httpx.get(base + f"/api/v2/tasks/{created.json()['id']}", headers=auth)
        assert got.status_code == 200 and got.json()["title"] == "survive"
        assert log.read_text().count("admin token") == 1  # not created again
    finally:
        stop(process)
