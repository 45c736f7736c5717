"""The templates read model: every saved template with all its versions, in the catalog's
partition. The catalog a reader sees is these plus the built-in pipelines never saved."""

from __future__ import annotations

from typing import Any

import msgspec

from cairn.commands.planning.templates import template_id
from cairn.domain.planning.template_events import template_event_from
from cairn.domain.planning.templates import CATALOG_PROJECT, Template, evolve
from cairn.projections.generations import Space, current_space
from cairn.projections.projection import documents_by_id, fold_batch
from cairn.projections.writes import Writes
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys

NAME = "templates"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Template).decode


def documents_key(space: Space) -> str:
    """Every saved template's document, a hash by template id."""
    return space.key("templates")


class TemplateProjection:
    name = NAME
    kind = "template"

    def documents(self, space: Space) -> str:
        return documents_key(space)

    def decode(self, raw: bytes) -> Any:
        return _decode(raw)

    def apply(self, pipe: Writes, space: Space, events: list[Envelope], loaded: Any) -> None:
        before: dict[str, Template] = loaded

        def step(state: Template | None, e: Envelope) -> Template:
            event = template_event_from(e.type, e.schema, e.data)
            return evolve(state, event, e.agg, e.ver, e.ts)

        changed = fold_batch(before, events, self.kind, step)
        if changed:
            pipe.hset(documents_key(space), {i: _encode(t) for i, t in changed.items()})


class Templates:
    """Queries over the templates read model."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client, self.keys = client, keys

    async def get(self, slug: str) -> Template | None:
        found: dict[str, Template] = await documents_by_id(
            self.client, self.keys, TemplateProjection(), [template_id(self.keys, slug)]
        )
        return next(iter(found.values()), None)

    async def saved(self) -> list[Template]:
        """Every saved template, by slug (one round trip after the generation's)."""
        partition = self.keys.partition_of(CATALOG_PROJECT)
        space = await current_space(self.client, self.keys, NAME, partition)
        docs = await self.client.hvals(documents_key(space))
        return sorted((_decode(d) for d in docs), key=lambda t: t.slug)
