"""The proposals read model equals the fold of the log, live and after a rebuild."""

from __future__ import annotations

import asyncio
import time

import msgspec

from cairn.commands.planning.proposals import dismiss_proposal, promote_proposal, submit_proposal
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.planning.proposal_events import proposal_event_from
from cairn.domain.planning.proposals import Proposal, ProposalInput, evolve
from cairn.projections.generations import positions
from cairn.projections.planning.proposals import NAME, ProposalProjection, documents_key
from cairn.projections.projector import run_projections
from cairn.projections.rebuild import rebuild
from cairn.streams.driver import Client
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.projections.fold import fold_kind, log_ends, read_documents


async def fold(store: EventStore) -> dict[str, object]:
    found = await fold_kind(store, "proposal.", proposal_event_from, evolve)
    return {i: msgspec.to_builtins(x) for i, x in found.items()}


async def read(client: Client, keys: Keys) -> dict[str, object]:
    return await read_documents(client, keys, NAME, documents_key, Proposal)


async def test_the_proposals_read_model_is_the_fold_of_the_log(
    client: Client, keys: Keys, store: EventStore
) -> None:
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projections(client, keys, [ProposalProjection()], stop, lease_ms=2000)
    )
    try:
        ids = []
        for i in range(6):
            given = ProposalInput(project=f"p{i % 3}", title=f"Idea {i}", dedup_key=f"k{i % 2}")
            ids.append((await submit_proposal(store, given, actor="t")).id)
        await promote_proposal(store, ids[0], "task", ContractSettings(), actor="t")
        await dismiss_proposal(store, ids[1], "no", actor="t")
        deadline = time.monotonic() + 20
        while await positions(client, keys, NAME) != await log_ends(client, keys):
            assert time.monotonic() < deadline, "the projector did not catch up"
            await asyncio.sleep(0.05)
        assert await read(client, keys) == await fold(store)
    finally:
        stop.set()
        await projector
    await rebuild(client, keys, ProposalProjection())
    assert await read(client, keys) == await fold(store)
