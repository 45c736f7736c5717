"""Project commands: create a project with settings, set or clear settings. A project's id is
computed from its name (in its own partition), so nothing needs an index to find one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cairn.commands.runner import CommandResult, Plan, id_for_key, load_states, run_command, writes
from cairn.domain.decision import Decision
from cairn.domain.tasks.project import (
    Project,
    decide_create,
    decide_update,
    evolve,
    project_event_from,
)
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore, Meta


def project_id(keys: Keys, name: str) -> str:
    """The one aggregate of a project's name."""
    return id_for_key(keys, "project", name, f"project:{name}")


def fold_project(events: list[Envelope]) -> Project | None:
    state: Project | None = None
    for e in events:
        state = evolve(state, project_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)
    return state


async def load_projects(store: EventStore, names: Iterable[str]) -> dict[str, Project]:
    """The projects among `names` that have settings, by name (a name only is left out)."""
    ids = {project_id(store.keys, n): n for n in names}
    found = await load_states(store, ids, "project", fold_project)
    return {ids[i]: p for i, p in found.items()}


async def load_project(store: EventStore, name: str) -> Project | None:
    return (await load_projects(store, [name])).get(name)


async def create_project(store: EventStore, name: str, settings: dict[str, Any], *,
                         actor: str) -> CommandResult:  # fmt: skip
    """A new project with these (checked) settings; one that exists is refused."""
    return await _run(store, name, settings, actor, create=True)


async def set_project(store: EventStore, name: str, settings: dict[str, Any], *,
                      actor: str) -> CommandResult:  # fmt: skip
    """Set (or clear, with None) some of a project's settings; nothing that changes nothing
    is written."""
    return await _run(store, name, settings, actor, create=False)


async def _run(store: EventStore, name: str, settings: dict[str, Any], actor: str,
               create: bool) -> CommandResult:  # fmt: skip
    aggregate_id = project_id(store.keys, name)

    async def plan() -> Plan:
        state = await load_project(store, name)
        decide = decide_create if create else decide_update
        decision: Decision = {aggregate_id: [*decide(state, name, settings)]}
        version = state.version if state else 0
        return Plan(writes=writes(decision, {aggregate_id: version}), subject_version=version)

    return await run_command(store, aggregate_id, plan, meta=Meta(actor=actor))
