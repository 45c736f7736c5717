"""`cairn up` on a fresh data directory: serves the API, keeps data across a restart, takes
its children along when it is killed, refuses a second `cairn up` on its data directory, a
busy port and a weak admin token, and keeps the embedded server behind a password."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cairn.streams.keys import Keys
from cairn.streams.server import free_port

STRONG = "rotated-Admin-token-0123456789abcdefXYZ"


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    return env | extra


def start(cwd: Path, log: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "cairn.api.cli", "up", *args], cwd=cwd,
                                env=environment(**env), stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip


def run_up(cwd: Path, log: Path, *args: str, **env: str) -> tuple[int | None, str]:
    """A `cairn up` expected to refuse at once: its exit code (None if it kept running) and
    its output."""
    process = start(cwd, log, *args, **env)
    try:
        code: int | None = process.wait(30)
    except subprocess.TimeoutExpired:
        code = None
        stop(process)  # a clean stop, so no child is left behind
    return code, log.read_text()


def cairn(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cairn.api.cli", *args], cwd=cwd,
                          env=environment(**env), capture_output=True, text=True,
                          timeout=30)  # fmt: skip


def wait_ready(base: str, timeout: float = 30) -> None:
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
    assert process.wait(30) == 0


def server_port(log: str) -> int:
    ports = re.findall(r"embedded server .* on 127\.0\.0\.1:(\d+)", log)
    assert ports, log
    return int(ports[-1])


def answer_without_password(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(100)


@pytest.mark.timeout(150)
def test_up_serves_and_keeps_data_across_restart(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "up.log"
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / ".cairn"  # the default data directory, in the working directory
    process = start(tmp_path, log, CAIRN_PORT=str(port))
    try:
        wait_ready(base)
        # Printed once `cairn up` has seen the API answer, a moment after the API does.
        deadline = time.monotonic() + 10
        while f"API on {base}" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
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

        # The other commands find the store through the data directory, with no
        # CAIRN_REDIS_URL, and the embedded server wants its password.
        status = cairn(tmp_path, "status")
        assert status.returncode == 0 and "board projection lag" in status.stdout, status.stderr
        keys = Keys("cairn", 16)
        partition_log = keys.log(keys.partition_of_id(created.json()["id"]))
        xrange = cairn(tmp_path, "redis-cli", "XRANGE", partition_log, "-", "+")
        assert xrange.returncode == 0 and "survive" in xrange.stdout, xrange.stderr
        first_port = server_port(log.read_text())
        assert answer_without_password(first_port).startswith(b"-NOAUTH")
        # Each process connects as its own store user, and the worker's cannot erase the log.
        users = cairn(tmp_path, "redis-cli", "ACL", "USERS").stdout.split()
        assert {f"cairn-{k}" for k in ("api", "projector", "scheduler", "worker")} <= set(users)
        urls = {}
        for pid in descendants(process.pid):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if b"cairn.api.cli" in argv and len(argv) > 3:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    found = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
                urls[argv[3].decode()] = found[b"CAIRN_REDIS_URL"].decode()
        assert urls["worker"].startswith("redis://cairn-worker:"), urls
        assert urls["projector"].startswith("redis://cairn-projector:"), urls
        worker_pw = (data / "acl" / "worker.password").read_text().strip()
        erase = cairn(tmp_path, "redis-cli", "--user", "cairn-worker", "--pass", worker_pw,
                      "DEL", partition_log)  # fmt: skip
        assert "NOPERM" in erase.stdout + erase.stderr, (erase.stdout, erase.stderr)
        assert stat.S_IMODE((data / "acl").stat().st_mode) == 0o700
    finally:
        stop(process)
    password_file = data / "server.password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    assert len(password) >= 24 and password not in log.read_text()
    aof = data / "appendonlydir"
    assert stat.S_IMODE(aof.stat().st_mode) == 0o700
    assert [f.name for f in aof.iterdir() if f.stat().st_mode & 0o077] == []
    assert stat.S_IMODE(data.stat().st_mode) == 0o700

    # Started again with a new CAIRN_ADMIN_TOKEN: the data survived, the server kept its
    # port, and the new token replaced the old one.
    process = start(tmp_path, log, CAIRN_PORT=str(port), CAIRN_ADMIN_TOKEN=STRONG)
    try:
        wait_ready(base)
        assert server_port(log.read_text()) == first_port
        rotated = {"Authorization": f"Bearer {STRONG}"}
        got = httpx.get(base + f"/api/v2/tasks/{created.json()['id']}", headers=rotated)
        assert got.status_code == 200 and got.json()["title"] == "survive"
        assert httpx.get(base + "/api/v2/projects", headers=auth).status_code == 401
        assert log.read_text().count("admin token") == 1  # not created again
    finally:
        stop(process)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat_line = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat_line.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's wait is left


@pytest.mark.timeout(120)
def test_kill_9_of_up_takes_its_children_along_and_a_second_up_is_refused(
    tmp_path: Path,
) -> None:
    port, log = free_port(), tmp_path / "up.log"
    data = tmp_path / "data"
    process = start(tmp_path, log, CAIRN_PORT=str(port), CAIRN_DATA_DIR=str(data))
    family: set[int] = set()
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        family = descendants(process.pid)
        assert len(family) >= 5, family  # server, api, projector, scheduler, worker-1

        code, out = run_up(tmp_path, tmp_path / "second.log", "--port", str(free_port()),
                           CAIRN_DATA_DIR=str(data))  # fmt: skip
        assert code == 2, out
        assert f"pid {process.pid}" in out and f"http://127.0.0.1:{port}" in out, out

        process.kill()
        process.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(pid) for pid in family):
            time.sleep(0.1)
        assert [pid for pid in family if alive(pid)] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in family:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)  # whatever a failure left behind


def test_up_says_which_port_is_taken(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        code, out = run_up(tmp_path, tmp_path / "up.log", "--port", str(port),
                           CAIRN_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
    assert code == 2, out
    assert f"127.0.0.1:{port}" in out and "taken" in out, out
    assert "API on" not in out and "Traceback" not in out


def test_up_refuses_a_weak_admin_token(tmp_path: Path) -> None:
    code, out = run_up(tmp_path, tmp_path / "up.log", CAIRN_PORT=str(free_port()),
                       CAIRN_DATA_DIR=str(tmp_path / "data"), CAIRN_ADMIN_TOKEN="x")  # fmt: skip
    assert code == 2, out
    assert "CAIRN_ADMIN_TOKEN" in out and "secrets.token_urlsafe" in out, out
    assert "embedded server" not in out and "Traceback" not in out


def test_up_says_when_bubblewrap_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cairn.api.cli.up import _check_sandbox
    from cairn.commands.settings import Settings

    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap here
    _check_sandbox(Settings.from_env({}))
    said = capsys.readouterr().out
    assert "bubblewrap is not installed" in said and "apt-get install bubblewrap" in said
    _check_sandbox(Settings.from_env({"CAIRN_SANDBOX": "off"}))
    assert capsys.readouterr().out == ""  # switched off on purpose: nothing to say
