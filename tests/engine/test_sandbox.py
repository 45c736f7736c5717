"""A hostile step as the agent, through a real worker on a real store whose processes connect
as their own ACL users (as `cairn up` makes them), with the real bubblewrap: each attack gets
nothing and its job records what was refused; a fork bomb and a disk filler are stopped with a
reason that says so; after each the worker is alive and runs the next job."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
from pathlib import Path

import pytest

from cairn.api.cli.up import prepare_store
from cairn.commands.jobs.job import load_job
from cairn.commands.settings import Settings
from cairn.domain.jobs.job import Job
from cairn.streams.keys import Keys
from cairn.streams.output import OutputStream
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore
from tests.engine.conftest import Engine, log_events, submit, wait_for
from tests.engine.test_execution import finished
from tests.worker.conftest import Seeded


def shell(remote: Seeded, command: str) -> dict[str, object]:
    return {"repository": str(remote.bare), "targetRuntime": "shell",
            "task": {"instructions": command, "publish": {"mode": "none"}}}  # fmt: skip


async def output_of(store: EventStore, keys: Keys, job_id: str) -> str:
    """What the step printed (its live output; the transcript's entries beside it left out)."""
    entries = await OutputStream(store.redis, keys).read(job_id)
    return "".join(e.text for e in entries if e.stream != "transcript")


@pytest.fixture
async def hardened(engine: Engine, server: EmbeddedServer, settings: Settings) -> Engine:
    """The engine as `cairn up` runs it: each process as its own store user, Cairn's functions
    loaded by the admin, the worker's data dir and HOME holding what a real one holds."""
    users = await prepare_store(server, settings.prefix)
    engine.users = users  # type: ignore[attr-defined]
    data = Path(engine.env["CAIRN_DATA_DIR"])
    (data / "acl").mkdir(parents=True, exist_ok=True)
    (data / "acl" / "worker.password").write_text(users["worker"].split(":")[2].split("@")[0])
    (data / "server.password").write_text(server.password)
    (data / "up.json").write_text(f'{{"redis_url": "{server.url}"}}')
    home = engine.tmp / "worker-home"
    for path, text in ((".ssh/id_ed25519", "PRIVATE KEY"), (".config/gh/hosts.yml", "oauth"),
                       (".claude/.credentials.json", '{"accessToken": "x"}')):  # fmt: skip
        (home / path).parent.mkdir(parents=True, exist_ok=True)
        (home / path).write_text(text)
    engine.env["HOME"] = str(home)
    engine.start("projector", "projector", "--lease-ms", "1000",
                 CAIRN_REDIS_URL=users["projector"])  # fmt: skip
    engine.start("scheduler", "scheduler", "--tick", "0.02", CAIRN_REDIS_URL=users["scheduler"])
    return engine


HOSTILE = """
W={worker}; S={store}; D={data}; H={home}; V={victim}; P={port}
try() {{ if sh -c "$1" > /dev/null 2>&1; then echo "GOT: $2"; else echo "refused: $2"; fi; }}
try "cat /proc/$W/environ" "the worker's environ"
try "cat /proc/$W/cmdline" "the worker's cmdline"
try "cat /proc/$S/environ" "the store's environ"
try "cat $D/server.password" "server.password"
try "cat $D/up.json" "up.json"
try "cat $D/acl/worker.password" "the ACL passwords"
try "cat $H/.ssh/id_ed25519" "~/.ssh"
try "cat $H/.config/gh/hosts.yml" "~/.config/gh"
try "cat $H/.claude/.credentials.json" "~/.claude"
try "ls $D/work | grep -q ." "a listing of the workspaces"
try "cat $D/work/$V/attempt-1/repo/victim.txt" "the other job's workspace"
try "ls $D/mirrors | grep -q . || touch $D/mirrors/planted" "the mirrors"
try "kill -0 $W" "a signal to the worker"
try "kill -0 $S" "a signal to the store"
found=$(cat $D/server.password $D/acl/*.password 2>/dev/null; env | grep -i -e pass -e redis)
for password in "" $found; do
  exec 3<>/dev/tcp/127.0.0.1/$P || continue
  printf 'AUTH %s\\r\\nPING\\r\\n' "$password" >&3
  sleep 0.2
  reply=$(timeout 2 dd bs=512 count=1 <&3 2>/dev/null | tr -d '\\r' | tr '\\n' ' ')
  exec 3>&-
  case "$reply" in *PONG*) echo "GOT: the store";; *) echo "refused: the store ($reply)";; esac
done
echo "looked at $(ls /proc | grep -c '^[0-9]') processes"
"""


async def test_a_hostile_step_gets_nothing_and_the_worker_runs_on(
    hardened: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded,
    server: EmbeddedServer,
) -> None:  # fmt: skip
    users = hardened.users  # type: ignore[attr-defined]
    worker = hardened.worker("w", "shell,git", concurrency=2, CAIRN_REDIS_URL=users["worker"],
                             CAIRN_STEP_PROCESSES_MAX="200", CAIRN_STEP_DISK_MAX="16M")  # fmt: skip
    victim = await submit(store, settings, "task", shell(
        remote, "echo victim-secret > victim.txt; sleep 25"))  # fmt: skip

    async def victim_running() -> bool:
        return any(e.type == "job.step_started" and e.agg == victim
                   for e in await log_events(store, keys))  # fmt: skip

    await wait_for(victim_running, timeout=60, what="the victim job's step")
    data = Path(hardened.env["CAIRN_DATA_DIR"]).resolve()
    hostile = await submit(store, settings, "task", shell(remote, HOSTILE.format(
        worker=worker.pid, store=server.process.pid, data=data, victim=victim, port=server.port,
        home=hardened.env["HOME"])))  # fmt: skip
    job = await finished(store, hostile, timeout=90)
    said = await output_of(store, keys, hostile)
    assert job.status == "succeeded", (job.outcome, said[-2000:])
    assert "GOT:" not in said, said
    assert said.count("refused: ") >= 15, said
    assert "victim-secret" not in said
    assert "refused: the store (" in said and ("NOAUTH" in said or "WRONGPASS" in said), said
    assert int(said.split("looked at ")[1].split()[0]) < 10, said  # its own processes only
    assert not (data / "mirrors" / "planted").exists()
    assert worker.poll() is None
    step = next(e for e in await log_events(store, keys)
                if e.agg == hostile and e.type == "job.step_started")  # fmt: skip
    sandbox = step.data["sandbox"]
    assert sandbox["kind"] == "bubblewrap" and sandbox["network"] == "on"
    assert sandbox["limits"]["processes"] == 200
    assert sandbox["user"] == ("nobody" if os.getuid() == 0 else pwd.getpwuid(os.getuid())[0])

    bomb = await finished(store, await submit(store, settings, "task", shell(
        remote, "bomb() { bomb | bomb & }; bomb; sleep 60")), timeout=90)  # fmt: skip
    error = (bomb.outcome or {}).get("error") or {}
    assert bomb.status == "failed" and error.get("code") == "process_limit", bomb.outcome
    assert "CAIRN_STEP_PROCESSES_MAX" in error["message"]
    assert worker.poll() is None

    filler = await finished(store, await submit(store, settings, "task", shell(
        remote, "head -c 100000000 /dev/zero > big.bin; sleep 30")), timeout=90)  # fmt: skip
    error = (filler.outcome or {}).get("error") or {}
    assert filler.status == "failed" and error.get("code") == "disk_limit", filler.outcome
    assert "CAIRN_STEP_DISK_MAX" in error["message"]

    victim_job = await finished(store, victim, timeout=60)
    assert victim_job.status == "succeeded", victim_job.outcome
    after = await finished(store, await submit(store, settings, "task", shell(
        remote, "echo still here")), timeout=60)  # fmt: skip
    assert after.status == "succeeded" and worker.poll() is None
    assert "still here" in await output_of(store, keys, after.id)
    worker.send_signal(signal.SIGTERM)


async def test_a_worker_with_the_sandbox_off_marks_its_runs(
    hardened: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded
) -> None:
    users = hardened.users  # type: ignore[attr-defined]
    hardened.worker("w", "shell,git", CAIRN_REDIS_URL=users["worker"], CAIRN_SANDBOX="off")
    job: Job = await finished(store, await submit(store, settings, "task", shell(
        remote, "echo unguarded")), timeout=60)  # fmt: skip
    assert job.status == "succeeded", job.outcome
    step = next(e for e in await log_events(store, keys)
                if e.agg == job.id and e.type == "job.step_started")  # fmt: skip
    assert step.data["sandbox"]["kind"] == "none"
    assert "not sandboxed" in step.data["sandbox"]["reason"]


async def test_without_bubblewrap_a_worker_takes_no_agent_jobs(
    hardened: Engine, store: EventStore, settings: Settings, remote: Seeded
) -> None:
    users = hardened.users  # type: ignore[attr-defined]
    bare = hardened.tmp / "no-bwrap"
    bare.mkdir()
    for tool in ("git", "bash", "sh", "prlimit", "setpriv"):
        if found := shutil.which(tool):
            (bare / tool).symlink_to(found)
    hardened.worker("w", "shell,git,noop", CAIRN_REDIS_URL=users["worker"], PATH=str(bare))
    noop = await finished(store, await submit(store, settings, "noop", {}), timeout=60)
    assert noop.status == "succeeded"
    said = hardened.output("w")
    assert "sandbox: unavailable: bubblewrap (bwrap) is not on PATH" in said, said
    assert "apt-get install bubblewrap" in said and "takes no agent jobs (shell)" in said
    shell_job = await submit(store, settings, "task", shell(remote, "echo never"))
    await wait_for(lambda: _still_queued(store, shell_job), timeout=5, what="queued")
    await asyncio.sleep(3)
    assert await _still_queued(store, shell_job)


async def _still_queued(store: EventStore, job_id: str) -> bool:
    return (await load_job(store, job_id)).status == "queued"
