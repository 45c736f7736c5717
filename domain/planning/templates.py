"""The Template aggregate as a decider: a named, versioned run preset in the catalog (steps with
`{{input}}` placeholders and the inputs they declare). Each save is a new version; old ones stay
readable. The built-in pipelines (domain/tasks/pipelines.py) are version 1 of the template named for
each task type until someone saves a version of their own: they need no event to exist."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from cairn.domain.decision import Decision
from cairn.domain.errors import CorruptStream, ValidationFailed, VersionConflict
from cairn.domain.limits import MAX_DESCRIPTION, MAX_INSTRUCTIONS, MAX_REASON
from cairn.domain.planning.template_events import (
    InputDef,
    StepDef,
    TemplateCreated,
    TemplateEvent,
    TemplateVersionAdded,
)
from cairn.domain.planning.template_inputs import INPUT_NAME, check_definition, expand
from cairn.domain.tasks.pipelines import PIPELINES
from cairn.domain.tasks.spec import Name, Title
from cairn.domain.tasks.task import Task

CATALOG_PROJECT = "templates"  # the catalog is one for the install: its partition is this name's
SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=SLUG)]
MAX_STEPS, MAX_INPUTS = 100, 50


class InputBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(pattern=INPUT_NAME, max_length=64)]
    type: Literal["string", "integer", "boolean", "enum"] = "string"
    default: Annotated[str, Field(max_length=MAX_INSTRUCTIONS)] | int | bool | None = Field(
        default=None, description="no default: the input is required"
    )
    choices: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=100, description="an enum's values"
    )
    description: Annotated[str, Field(max_length=MAX_REASON)] = ""


class StepBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Name
    title: Title
    instructions: Annotated[str, Field(min_length=1, max_length=MAX_INSTRUCTIONS)]


class TemplateBody(BaseModel):
    """A template version as a person saves it; `base_version`, if given, must be the latest
    (an edit made on an older version is refused rather than silently replacing a newer)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)
    slug: Slug
    title: Title
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION)] = ""
    inputs: list[InputBody] = Field(default_factory=list, max_length=MAX_INPUTS)
    steps: list[StepBody] = Field(min_length=1, max_length=MAX_STEPS)
    note: Annotated[str, Field(max_length=MAX_REASON)] = ""
    base_version: int | None = Field(default=None, ge=1)


class TemplateVersion(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    title: str
    description: str = ""
    inputs: list[InputDef] = []
    steps: list[StepDef] = []
    note: str = ""
    saved_at: str = ""  # empty for a built-in


class Template(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    slug: str
    builtin: bool = False
    versions: list[TemplateVersion] = []  # saved ones, oldest first (a built-in's v1 is not)
    created_at: str = ""
    updated_at: str = ""

    @property
    def latest(self) -> TemplateVersion | None:
        """The latest version (None only between the two events of a first save)."""
        return self.versions[-1] if self.versions else builtin_version(self.slug)

    def at(self, number: int) -> TemplateVersion | None:
        """Version `number`: a saved one, or a built-in's version 1."""
        if self.builtin and number == 1:
            return builtin_version(self.slug)
        return next((v for v in self.versions if v.number == number), None)

    def numbers(self) -> list[int]:
        return [1] * self.builtin + [v.number for v in self.versions]


def builtin_version(slug: str) -> TemplateVersion | None:
    """A built-in pipeline as version 1 of its template."""
    steps = PIPELINES.get(slug)
    if steps is None:
        return None
    words = slug.replace("_", " ")
    return TemplateVersion(
        number=1, title=f"{words.capitalize()} pipeline",
        description=f"The built-in steps of a {words} task's run.",
        steps=[StepDef(id=s.id, title=s.title, instructions=s.instructions) for s in steps],
        note="built in",
    )  # fmt: skip


def resolve(slug: str, stored: Template | None, number: int | None = None) -> TemplateVersion:
    """Version `number` (default the latest) of a template: the stored one wins over a
    built-in; an unknown slug or version is refused by name."""
    if stored is not None:
        found = stored.latest if number is None else stored.at(number)
    else:
        found = builtin_version(slug) if number in (None, 1) else None
    if found is None:
        known = stored.numbers() if stored else ([1] if builtin_version(slug) else [])
        if not known:
            raise ValidationFailed(f"unknown template {slug!r}", [{"path": "template", "reason":
                                   "unknown template; see GET /api/templates"}])  # fmt: skip
        reason = f"template {slug!r} has no version {number}; it has {_listed(known)}"
        raise ValidationFailed(reason, [{"path": "version", "reason": reason}])
    return found


def _listed(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


# ---- evolve and decide ----------------------------------------------------------------------


def evolve(state: Template | None, event: TemplateEvent, aggregate_id: str, version: int,
           ts: str) -> Template:  # fmt: skip
    expected = 1 if state is None else state.version + 1
    if version != expected or (state is None) != isinstance(event, TemplateCreated):
        raise CorruptStream(f"template {aggregate_id}: {event.TYPE} at version {version} "
                            f"(expected {expected}); the stream is corrupt",
                            aggregate_id=aggregate_id)  # fmt: skip
    replace = msgspec.structs.replace
    match event:
        case TemplateCreated():
            s = Template(id=aggregate_id, version=0, slug=event.slug, builtin=event.builtin,
                         created_at=ts)  # fmt: skip
        case TemplateVersionAdded() if state is not None:
            saved = TemplateVersion(
                number=event.number, title=event.title, description=event.description,
                inputs=event.inputs, steps=event.steps, note=event.note, saved_at=ts,
            )  # fmt: skip
            s = replace(state, versions=[*state.versions, saved])
        case _:
            raise TypeError(f"not a template event: {event!r}")
    return replace(s, version=version, updated_at=ts)


def decide_save(state: Template | None, template_id: str, body: TemplateBody) -> Decision:
    """A new version of the template (creating it first if need be); saving what the latest
    version already says decides nothing. A built-in's first save is its version 2."""
    inputs = [msgspec.convert(i.model_dump(mode="json"), InputDef) for i in body.inputs]
    steps = [StepDef(id=s.id, title=s.title, instructions=s.instructions) for s in body.steps]
    check_definition(inputs, steps)
    builtin = builtin_version(body.slug)
    latest = state.latest if state is not None else builtin
    if body.base_version is not None and body.base_version != (latest.number if latest else 0):
        raise VersionConflict(
            f"template {body.slug!r} is at version {latest.number if latest else 0}, not the "
            f"base_version {body.base_version} this edit started from; reload it and edit "
            "the latest", slug=body.slug, base_version=body.base_version,
            latest_version=latest.number if latest else 0,
        )  # fmt: skip
    added = TemplateVersionAdded(
        number=(latest.number if latest else 0) + 1, title=body.title,
        description=body.description, note=body.note, inputs=inputs, steps=steps,
    )  # fmt: skip
    if latest is not None and _content(latest) == _content(added):
        return {}
    if state is None:
        return {template_id: [TemplateCreated(slug=body.slug, builtin=builtin is not None),
                              added]}  # fmt: skip
    return {template_id: [added]}


def _content(v: TemplateVersion | TemplateVersionAdded) -> tuple[Any, ...]:
    return (v.title, v.description, v.inputs, v.steps)


# ---- a board task's run ---------------------------------------------------------------------


def template_slug(task: Task) -> str:
    """The template a task's run takes its steps from: its `pipeline_template`, else its
    type's."""
    return task.pipeline_template or task.task_type


def uses_template(task: Task) -> bool:
    """Whether a run of `task` takes its steps from a template: its spec is not a job of
    another type and names no steps of its own (domain/jobs/runs.py run_request)."""
    spec = task.spec
    if isinstance(spec.get("type"), str) and "payload" in spec:
        return False
    body = spec.get("task") if spec else None
    return not (isinstance(body, dict) and body.get("steps"))


def steps_for_run(task: Task, stored: Template | None) -> list[dict[str, str]]:
    """The steps of a run of `task`: its template's latest version (a saved one wins over the
    built-in) expanded with the inputs' defaults; a template that needs an input refuses."""
    slug = template_slug(task)
    try:
        version = resolve(slug, stored)
    except ValidationFailed:
        reason = (f"unknown pipeline template {slug!r}; save it (POST /api/templates) or name "
                  f"one of the built-in ones: {', '.join(sorted(PIPELINES))}")  # fmt: skip
        raise ValidationFailed(reason, [{"path": "pipeline_template", "reason": reason}]) from None
    return expand(version.inputs, version.steps, {})
