"""The orchestrator's read models: every run and every service, each as its events leave it
(the aggregate's own state, so the pages and the API read what the commands decide on)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from cairn.commands.orchestrator.services import service_id
from cairn.domain.orchestrator.runs import Run, run_event_from
from cairn.domain.orchestrator.runs import evolve as evolve_run
from cairn.domain.orchestrator.services import Service, service_event_from
from cairn.domain.orchestrator.services import evolve as evolve_service
from cairn.projections.generations import Space, current_spaces
from cairn.projections.projection import documents_by_id, fold_batch
from cairn.projections.writes import Writes
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys

D = TypeVar("D", Run, Service)


class _Documents(Generic[D]):
    """A projection whose document is the aggregate's state."""

    name: str
    kind: str
    model: type[D]

    def __init__(self) -> None:
        self._encode = msgspec.json.Encoder().encode
        self._decoder: msgspec.json.Decoder[D] = msgspec.json.Decoder(self.model)

    def documents(self, space: Space) -> str:
        return space.key(self.name)

    def decode(self, raw: bytes) -> Any:
        return self._decoder.decode(raw)

    def step(self, state: D | None, e: Envelope) -> D:
        raise NotImplementedError

    def apply(self, pipe: Writes, space: Space, events: list[Envelope], loaded: Any) -> None:
        changed = fold_batch(loaded, events, self.kind, self.step)
        if changed:
            pipe.hset(self.documents(space), {i: self._encode(d) for i, d in changed.items()})


class RunProjection(_Documents[Run]):
    name, kind, model = "orchestrator_runs", "orun", Run

    def step(self, state: Run | None, e: Envelope) -> Run:
        return evolve_run(state, run_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)


class ServiceProjection(_Documents[Service]):
    name, kind, model = "services", "service", Service

    def step(self, state: Service | None, e: Envelope) -> Service:
        event = service_event_from(e.type, e.schema, e.data)
        return evolve_service(state, event, e.agg, e.ver, e.ts)


async def _all(client: Client, keys: Keys, projection: _Documents[D]) -> list[D]:
    spaces = await current_spaces(client, keys, projection.name, keys.all_partitions())
    async with client.pipeline(transaction=False) as pipe:
        for space in spaces.values():
            pipe.hvals(projection.documents(space))
        replies = await pipe.execute()
    return [projection.decode(d) for docs in replies for d in docs]


class Runs:
    """Queries over the runs: newest first, filtered, a page at a time."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client, self.keys, self.projection = client, keys, RunProjection()

    async def get(self, run_id: str) -> Run | None:
        found: dict[str, Run] = await documents_by_id(self.client, self.keys, self.projection,
                                                      [run_id])  # fmt: skip
        return found.get(run_id)

    async def page(self, *, service: str | None = None, state: str | None = None,
                   after: str | None = None, limit: int = 50
                   ) -> tuple[list[Run], str | None]:  # fmt: skip
        """A page of runs and the cursor of the next (None: the last page). The cursor is the
        last run's id: ids grow with time, so the order is the submission order, newest first."""
        runs = [r for r in await _all(self.client, self.keys, self.projection)
                if (service is None or r.service == service)
                and (state is None or r.state == state)]  # fmt: skip
        runs.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        if after is not None:
            cut = next((i for i, r in enumerate(runs) if r.id == after), None)
            runs = runs[cut + 1 :] if cut is not None else [r for r in runs if r.id < after]
        page = runs[:limit]
        return page, page[-1].id if len(runs) > limit else None

    async def awaiting(self) -> list[Run]:
        return [r for r in await _all(self.client, self.keys, self.projection)
                if r.state == "awaiting_approval"]  # fmt: skip


class Services:
    """Queries over the service catalog."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client, self.keys, self.projection = client, keys, ServiceProjection()

    async def get(self, name: str) -> Service | None:
        sid = service_id(self.keys, name)
        found: dict[str, Service] = await documents_by_id(self.client, self.keys,
                                                          self.projection, [sid])  # fmt: skip
        service = found.get(sid)
        return None if service is None or service.removed else service

    async def all(self) -> list[Service]:
        found = await _all(self.client, self.keys, self.projection)
        return sorted((s for s in found if not s.removed), key=lambda s: s.name)
