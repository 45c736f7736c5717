"""The imports read model equals the fold of the log, live and after a rebuild."""

from __future__ import annotations

import asyncio
import time

import msgspec

from cairn.commands.planning.imports import commit_import, release_import_tasks
from cairn.domain.planning.import_events import import_event_from
from cairn.domain.planning.imports import ImportJob, evolve
from cairn.domain.planning.preview import ImportRequest
from cairn.domain.tasks.states import Flags
from cairn.projections.generations import current_space, positions
from cairn.projections.planning.imports import NAME, ImportProjection, Imports, documents_key
from cairn.projections.projector import run_projections
from cairn.projections.rebuild import rebuild
from cairn.streams.driver import Client
from cairn.streams.envelope import text
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.domain.planning.prd_samples import ACCOUNTS, ACCOUNTS_EDITED
from tests.projections.fold import log_ends


async def fold_imports(store: EventStore) -> dict[str, object]:
    found: dict[str, ImportJob] = {}
    for p in store.keys.all_partitions():
        for e in await store.read_log(p, count=100_000):
            if e.type.startswith("import."):
                event = import_event_from(e.type, e.schema, e.data)
                found[e.agg] = evolve(found.get(e.agg), event, e.agg, e.ver, e.ts)
    return {i: msgspec.to_builtins(j) for i, j in found.items()}


async def read_imports(client: Client, keys: Keys) -> dict[str, object]:
    docs: dict[str, object] = {}
    for p in keys.all_partitions():
        space = await current_space(client, keys, NAME, p)
        for k, v in (await client.hgetall(documents_key(space))).items():
            docs[text(k)] = msgspec.to_builtins(msgspec.json.decode(v, type=ImportJob))
    return docs


async def test_the_imports_read_model_is_the_fold_of_the_log(
    client: Client, keys: Keys, store: EventStore
) -> None:
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projections(client, keys, [ImportProjection()], stop, lease_ms=2000)
    )
    try:
        for project, source in (("a", ACCOUNTS), ("a", ACCOUNTS_EDITED), ("b", ACCOUNTS)):
            request = ImportRequest.model_validate(
                {"project": project, "source": source, "auto_ready": True, "granularity": "fine",
                 "max_parallelism_hint": 2}
            )  # fmt: skip
            result, _ = await commit_import(store, request, Flags(), actor="t")
            await release_import_tasks(store, result.id, Flags())
        deadline = time.monotonic() + 20
        while await positions(client, keys, NAME) != await log_ends(client, keys):
            assert time.monotonic() < deadline, "the projector did not catch up"
            await asyncio.sleep(0.05)
        expected = await fold_imports(store)
        assert len(expected) == 2 and await read_imports(client, keys) == expected
        imports = Imports(client, keys)
        assert sorted(await imports.pending()) == sorted(expected)
        assert len(await imports.of_project("a", 10)) == 1
    finally:
        stop.set()
        await projector
    await rebuild(client, keys, ImportProjection())
    assert await read_imports(client, keys) == await fold_imports(store)
