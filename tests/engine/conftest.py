"""A real engine for tests: projector, scheduler(s) and workers as processes on the test
server, with fake `codex`/`claude`/`gemini` CLIs (shell scripts) first on PATH."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cairn.commands.jobs.job import JobRequest, load_job, submit_job
from cairn.commands.settings import Settings
from cairn.domain.jobs.job import Job
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore
from tests.agents.clis import require_clis, template, vendor_env
from tests.agents.model_server import ModelServer
from tests.worker.conftest import Seeded, make_remote

FAKE_CLI = """#!/bin/sh
# A stand-in for an agent CLI: records its arguments, sleeps, exits as told. A worker runs it
# with Cairn's minimal environment, so what it is told is written into the script itself.
FAKE_CLI_LOG="{log}" FAKE_CLI_SLEEP="{sleep}" FAKE_CLI_EXIT="{exit}"
[ "$1" = "--version" ] && {{ echo "fake 0.0.0"; exit 0; }}
echo "$(basename "$0") $*" >> "$FAKE_CLI_LOG"
sleep "$FAKE_CLI_SLEEP"
exit "$FAKE_CLI_EXIT"
"""


def write_fake_clis(bin_dir: Path, log: Path, *, sleep: str = "0", exit: str = "0") -> None:
    bin_dir.mkdir(exist_ok=True)
    for name in ("codex", "claude", "gemini"):
        path = bin_dir / name
        path.write_text(FAKE_CLI.format(log=log, sleep=sleep, exit=exit))
        path.chmod(0o755)


class Engine:
    def __init__(self, server: EmbeddedServer, settings: Settings, tmp: Path) -> None:
        self.server, self.settings, self.tmp = server, settings, tmp
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        bin_dir = tmp / "bin"
        # What a stand-in CLI and the test share: a step sees nothing else of the test's
        # folders (worker/sandbox.py), so the engine's workers share this one with every step.
        self.shared = tmp / "shared"
        self.shared.mkdir(mode=0o777, exist_ok=True)
        self.shared.chmod(0o777)  # a root worker's steps run as nobody
        self.cli_log = self.shared / "cli.log"
        write_fake_clis(bin_dir, self.cli_log)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")},
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "CAIRN_REDIS_URL": server.url,
            "CAIRN_PREFIX": settings.prefix,
            "CAIRN_PARTITIONS": str(settings.partitions),
            "CAIRN_DATA_DIR": str(tmp / "data"),
            "CAIRN_RETRY_BASE_S": "0.2",
            "CAIRN_RETRY_CAP_S": "1",
            "CAIRN_LEASE_S": "2",
            "CAIRN_ALLOW_LOCAL_REPOSITORIES": "true",
            "CAIRN_SANDBOX_SHARED": str(self.shared),
        }

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{name}.log").open("ab") as log:  # the child keeps its own copy
            process = subprocess.Popen(
                [sys.executable, "-m", "cairn.api.cli", *args],
                env={**self.env, **env},
                stdout=log,
                stderr=log,
            )
        self.processes[name] = process
        return process

    def projector(self) -> None:
        self.start("projector", "projector", "--lease-ms", "1000")

    def scheduler(self, name: str = "scheduler", **env: str) -> None:
        self.start(name, "scheduler", "--tick", "0.02", **env)

    def worker(
        self, name: str, capabilities: str, *, concurrency: int = 1, lease: float = 2, **env: str
    ) -> subprocess.Popen[bytes]:
        """A worker; FAKE_CLI_SLEEP / FAKE_CLI_EXIT give it fake CLIs of its own that sleep or
        exit so."""
        told = {k: env.pop(k) for k in ("FAKE_CLI_SLEEP", "FAKE_CLI_EXIT") if k in env}
        if told:
            env["PATH"] = self.fake_path(name, sleep=told.get("FAKE_CLI_SLEEP", "0"),
                                         exit=told.get("FAKE_CLI_EXIT", "0"))  # fmt: skip
        return self.start(
            name,
            "worker",
            "--id",
            name,
            "--capabilities",
            capabilities,
            "--concurrency",
            str(concurrency),
            "--lease",
            str(lease),
            **env,
        )

    def agent_worker(
        self, name: str, runtime: str, server: ModelServer, *, capabilities: str | None = None,
        vendor: bool = True, **env: str,
    ) -> subprocess.Popen[bytes]:  # fmt: skip
        """A worker with the real, pinned agent CLIs on its PATH (none of the fakes), a HOME of
        its own, and what reaches the scripted server (`vendor`: the key and the endpoint). With
        no `capabilities` it probes, as a worker given none does."""
        bin_dir = require_clis()
        home = self.tmp / f"home-{name}"
        home.mkdir(exist_ok=True)
        told = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
            f"CAIRN_{runtime.upper()}_HOME_TEMPLATE": str(template(self.tmp, runtime)),
            **(vendor_env(runtime, server, home) if vendor else {}), **env,
        }  # fmt: skip
        argv = ["worker", "--id", name, "--lease", "5"]
        argv += ["--capabilities", capabilities] if capabilities else []
        return self.start(name, *argv, **told)

    def fake_path(self, name: str, *, sleep: str = "0", exit: str = "0") -> str:
        """A PATH whose fake CLIs (a folder of their own) sleep and exit as told."""
        own = self.tmp / f"bin-{name}"
        write_fake_clis(own, self.cli_log, sleep=sleep, exit=exit)
        return f"{own}:{self.env['PATH']}"

    def output(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Every process at once, as a machine's crash would (SIGKILL: nothing of theirs runs)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(sig)
        for process in self.processes.values():
            process.wait(15)
        self.processes = {}

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
async def engine(
    server: EmbeddedServer, settings: Settings, tmp_path: Path
) -> AsyncIterator[Engine]:
    running = Engine(server, settings, tmp_path)
    yield running
    running.stop_all()


_REMOTES: dict[str, str] = {}
_REMOTES_ROOT: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def _remotes_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    _REMOTES_ROOT.append(tmp_path_factory.mktemp("remotes"))


def repo_path(name: str) -> str:
    """A local bare repository standing in for `name` (made once per test session)."""
    if name not in _REMOTES:
        _REMOTES[name] = str(make_remote(_REMOTES_ROOT[0], name).bare)
    return _REMOTES[name]


@pytest.fixture
def remote(tmp_path: Path) -> Seeded:
    """A local bare remote seeded with a commit (tests/worker/conftest.py)."""
    return make_remote(tmp_path / "git")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with local repositories allowed (the remotes are local)."""
    execution = replace(settings.execution, allow_local_repositories=True)
    return replace(settings, execution=execution)


def task_payload(
    runtime: str, *, repo: str = "acme/app", instructions: str = "do it"
) -> dict[str, Any]:
    return {
        "repository": repo_path(repo),
        "targetRuntime": runtime,
        "task": {"instructions": instructions, "publish": {"mode": "none"}},
    }


async def submit(
    store: EventStore, settings: Settings, job_type: str, payload: Any, **options: Any
) -> str:
    request = JobRequest(job_type, payload, **options)
    return (await submit_job(store, request, settings.contract(), actor="test")).id


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float = 30, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


async def jobs_settled(
    store: EventStore, ids: list[str], status: str = "succeeded"
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        jobs = [await load_job(store, i) for i in ids]
        return all(j.status == status for j in jobs)

    return check


async def load_all(store: EventStore, ids: list[str]) -> list[Job]:
    return [await load_job(store, i) for i in ids]


async def log_events(store: EventStore, keys: Keys) -> list[Envelope]:
    events: list[Envelope] = []
    for p in keys.all_partitions():
        after = "0-0"
        while batch := await store.read_log(p, after, count=5000):
            after = batch[-1].position
            events.extend(batch)
    return events
