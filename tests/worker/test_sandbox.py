"""The agent sandbox with the real bubblewrap: a hostile step, run as the worker runs a step
(the sandbox's command line through run_process, the guard watching), gets nothing of the
worker's secrets, the data dir, other jobs or the worker's processes, and is stopped at its
limits with a reason that names them. As root (CI), the steps run as `nobody`."""

from __future__ import annotations

import asyncio
import os
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from cairn.commands.settings import SandboxSettings
from cairn.worker.process import Limits, ProcessResult, minimal_env, run_process
from cairn.worker.sandbox import Guard, Sandbox, descendants, hidden_paths, prepare_sandbox
from cairn.worker.workspace import Workspace, make_workspace

ROOMY = Limits(step_s=60, idle_s=60, deadline=None)
MiB = 1024 * 1024


class Step:
    def __init__(self, sandbox: Sandbox, workspace: Workspace) -> None:
        self.sandbox, self.workspace = sandbox, workspace
        self.output = ""
        self.guard: Guard | None = None

    async def run(self, body: str, limits: Limits = ROOMY) -> ProcessResult:
        script = self.workspace.repo / "step.sh"
        script.write_text("set -u\n" + textwrap.dedent(body))
        self.sandbox.hand_over(self.workspace)
        argv = self.sandbox.command(["/bin/bash", str(script)], self.workspace)
        guard = self.guard = self.sandbox.guard(self.workspace)
        self.output = ""

        async def collect(text: str) -> None:
            self.output += text

        async def should_stop() -> str | None:
            return guard.stopping()

        env = minimal_env(self.workspace.home, source={"PATH": os.environ["PATH"]})
        try:
            return await run_process(argv, cwd=self.workspace.repo, env=env, on_output=collect,
                                     limits=limits, should_stop=should_stop, grace_s=1,
                                     on_start=guard.started)  # fmt: skip
        finally:
            await guard.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    for name in ("server.password", "up.json"):
        (data / name).write_text("hunter2-store-secret\n")
        (data / name).chmod(0o600)
    (data / "acl").mkdir(mode=0o700)
    (data / "acl" / "worker.password").write_text("worker-secret\n")
    mirror = data / "mirrors" / "acme-app.git"
    mirror.mkdir(parents=True)
    (mirror / "HEAD").write_text("ref: refs/heads/main\n")
    return data


@pytest.fixture
def worker_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The worker user's HOME, with the secrets a worker's machine holds."""
    home = tmp_path / "worker-home"
    for path, text in ((".ssh/id_ed25519", "PRIVATE KEY"), (".config/gh/hosts.yml", "oauth"),
                       (".claude/.credentials.json", '{"token": "x"}')):  # fmt: skip
        (home / path).parent.mkdir(parents=True, exist_ok=True)
        (home / path).write_text(text)
    monkeypatch.setenv("HOME", str(home))
    return home


def sandbox_for(data_dir: Path, **changes: object) -> Sandbox:
    settings = replace(SandboxSettings(), **changes)  # type: ignore[arg-type]
    sandbox = prepare_sandbox(settings, data_dir)
    assert sandbox.check.ok, sandbox.check.reason
    return sandbox


@pytest.fixture
def step(data_dir: Path, worker_home: Path) -> Step:
    return Step(sandbox_for(data_dir), make_workspace(data_dir, "job-00-aaaaaaaaaaaaaaaa", 1))


async def test_the_step_reads_nothing_of_the_worker_or_the_data_dir(
    step: Step, data_dir: Path, worker_home: Path
) -> None:
    other = make_workspace(data_dir, "job-00-bbbbbbbbbbbbbbbb", 1)
    (other.repo / "theirs.txt").write_text("another job's code")
    result = await step.run(f"""
        for f in {data_dir}/server.password {data_dir}/up.json {data_dir}/acl/worker.password \\
                 {worker_home}/.ssh/id_ed25519 {worker_home}/.config/gh/hosts.yml \\
                 {worker_home}/.claude/.credentials.json {other.repo}/theirs.txt \\
                 /proc/{os.getpid()}/environ /proc/{os.getpid()}/cmdline /etc/shadow; do
          cat "$f" > /dev/null 2>&1 && echo "READ $f" || echo "refused $f"
        done
        ls {data_dir}/work 2>&1 | sed 's/^/listing: /'
        echo poisoned > {data_dir}/mirrors/acme-app.git/HEAD 2>/dev/null && echo WROTE mirror \\
          || echo "refused mirror"
        kill -TERM {os.getpid()} 2>/dev/null && echo SIGNALLED || echo "refused signal"
        echo "processes: $(ls /proc | grep -c '^[0-9]')"
        echo "env: $(env | cut -d= -f1 | sort | tr '\\n' ' ')"
        echo mine > mine.txt && cat mine.txt
    """)
    assert result.exit_status == 0, step.output
    assert "READ" not in step.output and "WROTE" not in step.output, step.output
    assert "SIGNALLED" not in step.output
    assert step.output.count("refused") == 12, step.output
    listing = [line for line in step.output.splitlines() if line.startswith("listing:")]
    assert listing and not any("job-00-b" in line for line in listing), listing
    assert (data_dir / "mirrors" / "acme-app.git" / "HEAD").read_text().startswith("ref:")
    assert int(step.output.split("processes: ")[1].split()[0]) <= 6  # its own tree only
    env = step.output.split("env: ")[1].split("\n")[0].split()
    assert not [name for name in env if name.startswith("CAIRN_")]
    assert "mine" in step.output and (step.workspace.repo / "mine.txt").read_text() == "mine\n"


async def test_a_step_runs_as_nobody_when_the_worker_is_root(step: Step) -> None:
    if os.getuid() != 0:
        pytest.skip("the worker is not root here")
    await step.run("id -un; touch /usr/cairn-probe 2>&1 | tail -1")
    assert step.output.splitlines()[0] == "nobody"
    assert "Read-only file system" in step.output
    assert not Path("/usr/cairn-probe").exists()


async def test_a_fork_bomb_is_stopped_and_says_so(data_dir: Path, worker_home: Path) -> None:
    sandbox = sandbox_for(data_dir, processes_max=200)
    step = Step(sandbox, make_workspace(data_dir, "job-00-cccccccccccccccc", 1))
    started = asyncio.get_running_loop().time()
    result = await step.run("bomb() { bomb | bomb & }; bomb; sleep 30")
    assert result.stopped == "process_limit", (result, step.output[-500:])
    assert asyncio.get_running_loop().time() - started < 20
    assert step.guard is not None and step.guard.breach is not None
    assert "CAIRN_STEP_PROCESSES_MAX" in step.guard.breach.message
    await asyncio.sleep(0.5)
    assert descendants(os.getpid()) == {} or all(
        "bomb" not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        for pid in descendants(os.getpid()) if Path(f"/proc/{pid}").exists()
    )  # fmt: skip


async def test_a_file_past_the_disk_limit_stops_the_step(data_dir: Path, worker_home: Path) -> None:
    sandbox = sandbox_for(data_dir, disk_max=8 * MiB)
    step = Step(sandbox, make_workspace(data_dir, "job-00-dddddddddddddddd", 1))
    result = await step.run("head -c 50000000 /dev/zero > big.bin; echo wrote; sleep 5")
    assert result.stopped == "disk_limit", (result, step.output[-500:])
    assert step.guard is not None and step.guard.breach is not None
    assert "CAIRN_STEP_DISK_MAX" in step.guard.breach.message
    assert (step.workspace.repo / "big.bin").stat().st_size <= 8 * MiB


async def test_memory_past_the_limit_stops_the_step(data_dir: Path, worker_home: Path) -> None:
    sandbox = sandbox_for(data_dir, memory_max=64 * MiB)
    step = Step(sandbox, make_workspace(data_dir, "job-00-eeeeeeeeeeeeeeee", 1))
    # Eight processes, each under the limit of one (RLIMIT_DATA), together past it: each
    # `tail` holds what it read until its input ends.
    result = await step.run("""
        for i in $(seq 1 8); do
          { head -c 30000000 /dev/zero; sleep 20; } | tail -c 30000000 > /dev/null &
        done
        wait
    """)
    assert result.stopped == "memory_limit", (result, step.output[-500:])
    assert step.guard is not None and step.guard.breach is not None
    assert "CAIRN_STEP_MEMORY_MAX" in step.guard.breach.message


async def test_no_network_with_network_none(data_dir: Path, worker_home: Path) -> None:
    sandbox = sandbox_for(data_dir, network="none")
    step = Step(sandbox, make_workspace(data_dir, "job-00-ffffffffffffffff", 1))
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await step.run(f"(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo CONNECTED "
                       "|| echo refused")  # fmt: skip
    assert step.output.strip() == "refused", step.output
    assert sandbox.describe()["network"] == "none"


def test_the_data_dir_and_homes_are_hidden_outermost_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    hidden = hidden_paths(data, [str(tmp_path / "nowhere")])
    assert Path("/tmp") in hidden and Path("/root") in hidden
    assert data.resolve() not in hidden or not str(data.resolve()).startswith("/tmp/")
    assert all(not any(h in p.parents for h in hidden) for p in hidden)


def test_without_bubblewrap_the_worker_says_what_to_install(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    sandbox = prepare_sandbox(SandboxSettings(), data_dir)
    assert not sandbox.check.ok and not sandbox.usable
    assert "apt-get install bubblewrap" in str(sandbox.check.reason)
    off = prepare_sandbox(SandboxSettings(mode="off"), data_dir)
    assert off.usable and off.describe()["kind"] == "none"
    assert "not sandboxed" in off.describe()["reason"]
