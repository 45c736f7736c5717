"""Template commands: save a version (creating the template on its first save). A template's id
is computed from its slug, so the catalog needs no index to find one."""

from __future__ import annotations

from collections.abc import Iterable

from cairn.commands.runner import CommandResult, Plan, id_for_key, load_states, run_command, writes
from cairn.domain.planning.template_events import template_event_from
from cairn.domain.planning.templates import (
    CATALOG_PROJECT,
    Template,
    TemplateBody,
    decide_save,
    evolve,
)
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore, Meta


def template_id(keys: Keys, slug: str) -> str:
    """The one aggregate of a slug, in the catalog's partition."""
    return id_for_key(keys, "template", CATALOG_PROJECT, f"template:{slug}")


def fold_template(events: list[Envelope]) -> Template | None:
    state: Template | None = None
    for e in events:
        state = evolve(state, template_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)
    return state


async def load_templates(store: EventStore, slugs: Iterable[str]) -> dict[str, Template]:
    """The saved templates among `slugs`, by slug (built-ins never saved are left out)."""
    ids = {template_id(store.keys, s): s for s in slugs}
    found = await load_states(store, ids, "template", fold_template)
    return {ids[i]: t for i, t in found.items()}


async def load_template(store: EventStore, slug: str) -> Template | None:
    return (await load_templates(store, [slug])).get(slug)


async def save_template(store: EventStore, body: TemplateBody, *, actor: str) -> CommandResult:
    """Save the body as the template's next version; the same content again writes nothing."""
    aggregate_id = template_id(store.keys, body.slug)

    async def plan() -> Plan:
        state = await load_template(store, body.slug)
        version = state.version if state else 0
        return Plan(writes=writes(decide_save(state, aggregate_id, body), {aggregate_id: version}),
                    subject_version=version)  # fmt: skip

    return await run_command(store, aggregate_id, plan, meta=Meta(actor=actor))
