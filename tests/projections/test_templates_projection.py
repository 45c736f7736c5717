"""The templates read model equals the fold of the log, live and after a rebuild."""

from __future__ import annotations

import asyncio
import time

import msgspec

from cairn.commands.templates import save_template
from cairn.domain.template_events import template_event_from
from cairn.domain.templates import Template, TemplateBody, evolve
from cairn.projections.generations import current_space, positions
from cairn.projections.projector import run_projections
from cairn.projections.rebuild import rebuild
from cairn.projections.templates import NAME, TemplateProjection, documents_key
from cairn.streams.connection import Client
from cairn.streams.envelope import text
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.projections.fold import log_ends


async def fold(store: EventStore) -> dict[str, object]:
    found: dict[str, Template] = {}
    for p in store.keys.all_partitions():
        for e in await store.read_log(p, count=100_000):
            if e.type.startswith("template."):
                event = template_event_from(e.type, e.schema, e.data)
                found[e.agg] = evolve(found.get(e.agg), event, e.agg, e.ver, e.ts)
    return {i: msgspec.to_builtins(x) for i, x in found.items()}


async def read(client: Client, keys: Keys) -> dict[str, object]:
    docs: dict[str, object] = {}
    for p in keys.all_partitions():
        space = await current_space(client, keys, NAME, p)
        for k, v in (await client.hgetall(documents_key(space))).items():
            docs[text(k)] = msgspec.to_builtins(msgspec.json.decode(v, type=Template))
    return docs


async def test_the_templates_read_model_is_the_fold_of_the_log(
    client: Client, keys: Keys, store: EventStore
) -> None:
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projections(client, keys, [TemplateProjection()], stop, lease_ms=2000)
    )
    try:
        for i in range(7):
            slug = ("docs", "release", "triage")[i % 3]
            await save_template(store, TemplateBody.model_validate({
                "slug": slug, "title": f"{slug} {i // 2}",
                "steps": [{"id": "s", "title": "Step", "instructions": f"do {i // 2}"}],
            }), actor="t")  # fmt: skip
        deadline = time.monotonic() + 20
        while await positions(client, keys, NAME) != await log_ends(client, keys):
            assert time.monotonic() < deadline, "the projector did not catch up"
            await asyncio.sleep(0.05)
        folded = await fold(store)
        assert await read(client, keys) == folded and len(folded) == 3
    finally:
        stop.set()
        await projector
    await rebuild(client, keys, TemplateProjection())
    assert await read(client, keys) == await fold(store)
