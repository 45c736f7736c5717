"""The templates read model equals the fold of the log, live and after a rebuild."""

from __future__ import annotations

import asyncio
import time

import msgspec

from cairn.commands.planning.templates import save_template
from cairn.domain.planning.template_events import template_event_from
from cairn.domain.planning.templates import Template, TemplateBody, evolve
from cairn.projections.generations import positions
from cairn.projections.planning.templates import NAME, TemplateProjection, documents_key
from cairn.projections.projector import run_projections
from cairn.projections.rebuild import rebuild
from cairn.streams.driver import Client
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.projections.fold import fold_kind, log_ends, read_documents


async def fold(store: EventStore) -> dict[str, object]:
    found = await fold_kind(store, "template.", template_event_from, evolve)
    return {i: msgspec.to_builtins(x) for i, x in found.items()}


async def read(client: Client, keys: Keys) -> dict[str, object]:
    return await read_documents(client, keys, NAME, documents_key, Template)


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
