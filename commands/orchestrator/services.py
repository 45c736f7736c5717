"""The service catalog's commands: define (create or replace) and remove a service."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cairn.commands.runner import CommandResult, Plan, id_for_key, load_states, run_command, writes
from cairn.domain.orchestrator.runs import PROJECT
from cairn.domain.orchestrator.services import (
    Service,
    decide_define,
    decide_remove,
    evolve,
    service_event_from,
)
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore, Meta


def service_id(keys: Keys, name: str) -> str:
    """A service's aggregate (its name names it)."""
    return id_for_key(keys, "svc", PROJECT, f"service:{name}")


def fold_service(events: list[Envelope]) -> Service | None:
    state: Service | None = None
    for e in events:
        state = evolve(state, service_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)
    return state


async def load_services(store: EventStore, ids: Iterable[str]) -> dict[str, Service]:
    return await load_states(store, ids, "svc", fold_service)


async def load_service(store: EventStore, name: str) -> Service | None:
    sid = service_id(store.keys, name)
    return (await load_services(store, [sid])).get(sid)


async def define_service(store: EventStore, spec: dict[str, Any], *, actor: str, create: bool
                         ) -> CommandResult:  # fmt: skip
    """Create (refused if it exists) or replace the service `spec` names (validated)."""
    sid = service_id(store.keys, str(spec["name"]))

    async def plan() -> Plan:
        service = await load_service(store, str(spec["name"]))
        events = decide_define(service, spec, create=create)
        version = service.version if service else 0
        return Plan(writes=writes({sid: [*events]}, {sid: version}), subject_version=version)

    return await run_command(store, sid, plan, meta=Meta(actor=actor))


async def remove_service(store: EventStore, name: str, *, actor: str) -> CommandResult:
    sid = service_id(store.keys, name)

    async def plan() -> Plan:
        service = await load_service(store, name)
        events = decide_remove(service, name)
        assert service is not None
        return Plan(writes=writes({sid: [*events]}, {sid: service.version}),
                    subject_version=service.version)  # fmt: skip

    return await run_command(store, sid, plan, meta=Meta(actor=actor))
