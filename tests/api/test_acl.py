"""Redis ACL users per process kind, on a real server with ACLs on (`cairn acl`'s file): every
process works as its own user (jobs submitted through the API run to the end, rebuild, tail,
tokens), and the server refuses what a user may not do (the auditor's write; a worker's read
of the tokens)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.api.app import create_app
from cairn.api.auth import create_token
from cairn.api.cli.acl import KINDS, passwords_in, redis_url, user_name
from cairn.commands.settings import Settings
from cairn.domain.errors import InfrastructureError
from cairn.projections.projector import LIBRARIES
from cairn.streams.connection import connect
from cairn.streams.functions import ARCHIVE, STREAMS, load_all
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer, start_plain_server

PREFIX = "acl"
NOPERM = r"(?i)no permissions"  # the server's words for an ACL refusal


def run_cli(url: str, *args: str, **more: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update(CAIRN_REDIS_URL=url, CAIRN_PREFIX=PREFIX, CAIRN_PARTITIONS="4", **more)
    return subprocess.run([sys.executable, "-m", "cairn.api.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[tuple[EmbeddedServer, dict[str, str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    made = subprocess.run(
        [sys.executable, "-m", "cairn.api.cli", "acl", "--dir", str(tmp_path / "acl"),
         "--address", "127.0.0.1:6379"], env={**env, "CAIRN_PREFIX": PREFIX},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    passwords = passwords_in(tmp_path / "acl")  # the ones `cairn acl` made
    assert "acl-auditor" in made.stdout
    assert not any(p in made.stdout for p in passwords.values())  # never printed
    # The server reads the hashes as its own user (in compose, uid 999); passwords stay private.
    assert (tmp_path / "acl" / "users.acl").stat().st_mode & 0o777 == 0o644
    assert all((tmp_path / "acl" / f"{kind}.password").stat().st_mode & 0o777 == 0o600
               for kind in KINDS)  # fmt: skip
    server = start_plain_server(
        tmp_path / "redis", ["--aclfile", str((tmp_path / "acl" / "users.acl").resolve())],
        auth=(user_name("api", PREFIX), passwords["api"]),
    )  # fmt: skip
    address = f"127.0.0.1:{server.port}"
    urls = {kind: redis_url(kind, PREFIX, passwords[kind], address) for kind in KINDS}
    yield server, urls
    server.stop()


async def test_every_process_works_as_its_own_user(
    acl_server: tuple[EmbeddedServer, dict[str, str]], tmp_path: Path
) -> None:
    _, urls = acl_server
    keys = Keys(PREFIX, 4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update(CAIRN_PREFIX=PREFIX, CAIRN_PARTITIONS="4", CAIRN_DATA_DIR=str(tmp_path / "data"),
               CAIRN_LEASE_S="3")  # fmt: skip
    cli = [sys.executable, "-m", "cairn.api.cli"]
    kinds = {"projector": ["projector", "--lease-ms", "1000"],
             "scheduler": ["scheduler", "--tick", "0.02"],
             "worker": ["worker", "--capabilities", "noop", "--concurrency", "4", "--lease", "3"]}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for kind, args in kinds.items():
        with (tmp_path / f"{kind}.log").open("wb") as log:
            processes[kind] = subprocess.Popen([*cli, *args], stdout=log, stderr=log,
                                               env={**env, "CAIRN_REDIS_URL": urls[kind]})
    client = connect(urls["api"])
    settings = Settings(redis_url=urls["api"], prefix=PREFIX, partitions=4, data_dir=tmp_path)
    try:
        token = await create_token(client, keys, "ops", "operator")
        app = create_app(settings, client)
        headers = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)
        # The API's start loads Cairn's functions, which the others may only call.
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://cairn", headers=headers
        ) as http:
            ids = []
            for i in range(12):
                r = await http.post("/api/queue/jobs", json={"type": "noop", "payload": {},
                                                             "project": f"p{i % 3}"})  # fmt: skip
                assert r.status_code in (200, 201, 202), r.text
                ids.append(r.json()["id"])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                states = [(await http.get(f"/api/queue/jobs/{i}")).json().get("status")
                          for i in ids]  # fmt: skip
                if all(s == "succeeded" for s in states):
                    break
                await asyncio.sleep(0.2)
            assert all(s == "succeeded" for s in states), states
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200 and "cairn_workers_alive 1.0" in metrics.text
    finally:
        await client.aclose()
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(20)
    for kind in kinds:
        said = (tmp_path / f"{kind}.log").read_text()
        assert "NOPERM" not in said and "no permissions" not in said, (kind, said[-2000:])

    tail = run_cli(urls["auditor"], "tail", "--json")
    assert tail.returncode == 0 and tail.stdout.count('"job.succeeded"') == 12, tail.stderr
    assert run_cli(urls["auditor"], "export", str(tmp_path / "log.jsonl")).returncode == 0
    rebuilt = run_cli(urls["projector"], "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "ops" in run_cli(urls["api"], "token", "list").stdout
    # Archiving has a user of its own: the only one besides the API that may delete log entries.
    archived = run_cli(urls["archiver"], "archive", "--older-than", "0s",
                       CAIRN_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
    assert archived.returncode == 0 and "archived 12 aggregates" in archived.stdout, archived
    after = run_cli(urls["auditor"], "tail", "--json", CAIRN_DATA_DIR=str(tmp_path / "data"))
    assert after.stdout.count('"job.succeeded"') == 12  # read from the archive now


async def test_the_server_refuses_what_a_user_may_not_do(
    acl_server: tuple[EmbeddedServer, dict[str, str]],
) -> None:
    _, urls = acl_server
    keys = Keys(PREFIX, 4)
    api = connect(urls["api"])
    auditor = connect(urls["auditor"])
    worker = connect(urls["worker"])
    try:
        await load_all(api, LIBRARIES)  # as the API's start does
        await api.xadd(keys.log(0), {"type": "x"})
        assert len(await auditor.xrange(keys.log(0)) or []) == 1  # the auditor reads the log
        with pytest.raises(InfrastructureError, match=NOPERM):
            await auditor.xadd(keys.log(0), {"type": "forged"})
        with pytest.raises(InfrastructureError, match=NOPERM):
            await auditor.delete(keys.log(0))
        with pytest.raises(InfrastructureError, match=NOPERM):
            await auditor.hgetall(keys.tokens())
        with pytest.raises(InfrastructureError, match=NOPERM):
            await worker.hgetall(keys.tokens())  # a worker cannot read or mint tokens
        with pytest.raises(InfrastructureError, match=NOPERM):
            await worker.flushall()
        await stolen_worker_credentials_cannot_erase_the_log(api, worker, keys)
        with pytest.raises(InfrastructureError, match=r"WRONGPASS|NOAUTH|invalid"):
            await connect(urls["api"].replace(f"{PREFIX}-api:", "default:")).ping()
        assert len(await api.xrange(keys.log(0)) or []) == 2  # the one above, and the helper's
    finally:
        for c in (api, auditor, worker):
            await c.aclose()


def test_compose_runs_each_process_as_its_own_user() -> None:
    import yaml

    compose = yaml.safe_load((Path(__file__).parents[2] / "compose.yaml").read_text())
    services = compose["services"]
    assert "--aclfile" in services["redis"]["command"]
    for kind in ("api", "projector", "scheduler", "worker"):
        # One data directory for all: the API serves what workers write, all read the archive.
        assert services[kind]["volumes"] == ["cairn-data:/data"], kind
        url = services[kind]["environment"]["CAIRN_REDIS_URL"]
        assert url.startswith(f"redis://{user_name(kind, 'cairn')}:${{CAIRN_{kind.upper()}_")


async def stolen_worker_credentials_cannot_erase_the_log(api: Any, worker: Any, keys: Keys
                                                        ) -> None:  # fmt: skip
    """What an agent that got the worker's password could try on a partition log and an
    aggregate's list: every erasing command, a script, a function of its own, a type change,
    Cairn's own archiving function (whose DEL and XDEL are checked against the caller: refused).
    (It can append: XADD, whose MAXLEN option ACLs cannot refuse; decision 0007.)"""
    log, stream = keys.log(0), keys.stream("job-00-0123456789abcdef")
    entry = await api.xadd(log, {"type": "job.created"})
    await api.rpush(stream, entry)
    length = await api.xlen(log)
    attempts = [
        ("DEL", log), ("UNLINK", log), ("XTRIM", log, "MAXLEN", "0"), ("XDEL", log, "0-1"),
        ("SET", log, "x"), ("EXPIRE", log, "1"), ("RENAME", log, "elsewhere"),
        ("DEL", stream), ("LTRIM", stream, "0", "0"), ("LPOP", stream),
        ("XGROUP", "DESTROY", log, "board:g1"), ("XGROUP", "SETID", log, "board:g1", "$"),
        ("EVAL", "return redis.call('DEL', KEYS[1])", "1", log),
        ("EVAL", "return 1", "0"), ("SCRIPT", "LOAD", "return 1"),
        ("FUNCTION", "LOAD", "#!lua name=evil\nredis.register_function('evil', "
         "function(k) return redis.call('DEL', k[1]) end)"),
        ("FUNCTION", "FLUSH"), ("FUNCTION", "DELETE", STREAMS.name),
        ("FCALL", ARCHIVE.name, "2", log, stream, "-", "1", "1", entry),
        ("CONFIG", "SET", "appendonly", "no"), ("ACL", "SETUSER", "evil", "on", "+@all"),
    ]
    for command in attempts:
        with pytest.raises(InfrastructureError, match=NOPERM):
            await worker.execute_command(*command)
    assert await api.xlen(log) == length and await api.lrange(stream, 0, -1) == [entry]
