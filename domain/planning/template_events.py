"""Template events: a catalog entry created and each version saved, as facts in the past tense.
Never edit one once written; add an upcaster."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from cairn.domain.events import Event
from cairn.domain.upcast import Upcaster, decode_event


class TemplateEvent(Event, frozen=True, kw_only=True, omit_defaults=True):
    pass


class InputDef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A declared input: `{{name}}` in a step's title or instructions; no default: required."""

    name: str
    type: str  # string, integer, boolean, enum
    default: str | int | bool | None = None
    choices: list[str] = []  # an enum's values
    description: str = ""


class StepDef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str
    instructions: str


class TemplateCreated(TemplateEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A slug entered the catalog; `builtin` when it takes over a built-in pipeline, whose
    steps stay its version 1."""

    TYPE: ClassVar[str] = "template.created"
    slug: str
    builtin: bool = False


class TemplateVersionAdded(TemplateEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "template.version_added"
    number: int
    title: str
    description: str = ""
    inputs: list[InputDef] = []
    steps: list[StepDef] = []
    note: str = ""


TEMPLATE_EVENTS: dict[str, type[TemplateEvent]] = {
    cls.TYPE: cls for cls in (TemplateCreated, TemplateVersionAdded)
}
TEMPLATE_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def template_event_from(type_: str, schema: int, data: dict[str, Any]) -> TemplateEvent:
    """A template event from its envelope's type, schema and data (upcast to the current)."""
    return decode_event(TEMPLATE_EVENTS, TEMPLATE_UPCASTERS, type_, schema, data)
