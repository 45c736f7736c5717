"""Backup and restore from the log: `cairn export` then `cairn import` into an empty install
gives the same log, the same aggregate indexes and, after a rebuild on both, every read model
the same, key for key; an import that stopped goes on when run again; a used install is
refused."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from cairn.commands.jobs.job import JobRequest, submit_job
from cairn.commands.settings import Settings
from cairn.projections.catalog import all_projections
from cairn.projections.rebuild import rebuild
from cairn.streams.envelope import text
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore
from tests.api.test_cli import cairn
from tests.projections.workload import run_workload


async def dump(client: aioredis.Redis, keys: Keys, pattern: str = "*") -> dict[str, Any]:
    """Every key of an install matching `pattern` (after the prefix) with its value, the prefix
    taken out of names and values so two installs compare."""
    found: dict[str, Any] = {}
    strip = keys.prefix.encode()
    async for raw in client.scan_iter(match=f"{keys.prefix}:{pattern}", count=1000):
        key = text(raw)
        kind = text(await client.type(key))
        value: Any
        if kind == "hash":
            value = sorted((await client.hgetall(key)).items())
        elif kind == "zset":
            value = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            value = sorted(await client.smembers(key))
        elif kind == "list":
            value = await client.lrange(key, 0, -1)
        elif kind == "stream":
            value = await client.xrange(key)
        else:
            value = await client.get(key)
        found[key.removeprefix(keys.prefix)] = repr(value).replace(repr(strip)[2:-1], "<prefix>")
    return found


async def rebuild_all(client: aioredis.Redis, keys: Keys) -> None:
    for projection in all_projections().values():
        await rebuild(client, keys, projection)


async def test_export_then_import_gives_identical_read_models(
    server: EmbeddedServer, client: aioredis.Redis, keys: Keys, store: EventStore,
    settings: Settings, tmp_path: Path,
) -> None:  # fmt: skip
    await run_workload(store, random.Random(7), 300)
    for i in range(40):
        request = JobRequest("noop", {}, project=f"p{i % 3}", priority=i % 4)
        await submit_job(store, request, settings.contract(), actor="test")
    file = tmp_path / "backup.jsonl.gz"
    out = cairn(server, keys, "export", str(file))
    assert out.returncode == 0, out.stderr
    assert "exported" in out.stderr and "events (100%)" in out.stderr

    target = Keys(f"t{uuid.uuid4().hex[:10]}", keys.partitions)
    done = cairn(server, target, "import", str(file))
    assert done.returncode == 0, done.stderr
    assert await dump(client, target, "{p*}:log") == await dump(client, keys, "{p*}:log")
    assert await dump(client, target, "{p*}:s:*") == await dump(client, keys, "{p*}:s:*")

    await rebuild_all(client, keys)
    await rebuild_all(client, target)
    source_models = await dump(client, keys, "{p*}:rm:*")
    assert len(source_models) > 50
    assert await dump(client, target, "{p*}:rm:*") == source_models

    again = cairn(server, target, "import", str(file))  # nothing left to import
    assert again.returncode == 0 and "imported 0 events" in again.stderr
    assert cairn(server, keys, "export", str(file)).returncode == 2  # exists: not overwritten


async def test_an_import_that_stopped_goes_on_and_a_used_install_is_refused(
    server: EmbeddedServer, client: aioredis.Redis, keys: Keys, store: EventStore,
    tmp_path: Path,
) -> None:  # fmt: skip
    await run_workload(store, random.Random(3), 120)
    file = tmp_path / "backup.jsonl"
    assert cairn(server, keys, "export", str(file)).returncode == 0
    lines = file.read_bytes().splitlines(keepends=True)
    half = tmp_path / "half.jsonl"
    half.write_bytes(b"".join(lines[: len(lines) // 2]))
    target = Keys(f"t{uuid.uuid4().hex[:10]}", keys.partitions)
    assert cairn(server, target, "import", str(half)).returncode == 0
    assert cairn(server, target, "import", str(file)).returncode == 0
    assert await dump(client, target, "{p*}:log") == await dump(client, keys, "{p*}:log")
    assert await dump(client, target, "{p*}:s:*") == await dump(client, keys, "{p*}:s:*")

    used = Keys(f"t{uuid.uuid4().hex[:10]}", keys.partitions)
    await EventStore(client, used).append(0, [])  # nothing: still empty
    other = EventStore(client, used)
    await run_workload(other, random.Random(5), 10)
    refused = cairn(server, used, "import", str(file))
    assert refused.returncode == 2 and "not empty" in refused.stderr
    wrong = cairn(server, Keys(used.prefix + "x", keys.partitions + 1), "import", str(file))
    assert wrong.returncode == 2 and "CAIRN_PARTITIONS" in wrong.stderr
