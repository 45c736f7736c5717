"""What a person may send to create or change a task, validated with field paths."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)

from cairn.domain.errors import ValidationFailed
from cairn.domain.limits import (
    MAX_DEPTH,
    MAX_DESCRIPTION,
    MAX_SPEC_BYTES,
    MAX_TITLE,
    depth_reason,
    too_deep,
)
from cairn.domain.paths import join_path
from cairn.domain.priority import PRIORITY_MAX, PRIORITY_MIN, PRIORITY_NAMES, parse_priority


class TaskType(StrEnum):
    FEATURE = "feature"
    BUG_FIX = "bug_fix"
    HOTFIX = "hotfix"
    CHORE = "chore"
    REFACTOR = "refactor"
    DOCS = "docs"
    TEST = "test"
    RESEARCH = "research"


class Source(StrEnum):
    MANUAL = "manual"
    PRD_IMPORT = "prd_import"
    GENERATED = "generated"
    PROMOTED_QUICK_ACTION = "promoted_quick_action"


M = TypeVar("M", bound=BaseModel)

# Characters that show nothing: whitespace, controls, zero-width and other format marks. A
# text of only these is blank. Written out (not \s or \p{..}) so that Python, pydantic's
# regex engine and an OpenAPI client read the same class.
INVISIBLE = (
    r"\u0000-\u0020\u007f-\u00a0\u00ad\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5"
    r"\u180b-\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\u3164\ufe00-\ufe0f"
    r"\ufeff\uffa0\ufff0-\ufffb"
)
VISIBLE = f"[^{INVISIBLE}]"  # a text that is not blank holds one of these
_VISIBLE = re.compile(VISIBLE)


def _not_blank(value: str) -> str:
    if not _VISIBLE.search(value):
        raise ValueError("must not be blank (it shows nothing)")
    return value


PRIORITY_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": PRIORITY_MIN, "maximum": PRIORITY_MAX},
        {"type": "string", "enum": list(PRIORITY_NAMES)},
    ]
}


def _priority(value: object) -> int:
    # JSON does not tell 3 from 3.0, and JSON Schema counts both as integers.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return parse_priority(value)


Priority = Annotated[int, BeforeValidator(_priority), WithJsonSchema(PRIORITY_SCHEMA)]
# The schema states the rule; the validator keeps its plain message.
Visible = (Field(json_schema_extra={"pattern": VISIBLE}), AfterValidator(_not_blank))


def _at_most(limit: int) -> BeforeValidator:
    """The limit on the text as sent: the models strip surrounding whitespace before they
    measure, so without this 30,000 tabs would pass a limit of 20,000 the schema states."""

    def check(value: object) -> object:
        if isinstance(value, str) and len(value) > limit:
            raise ValueError(f"String should have at most {limit} characters")
        return value

    return BeforeValidator(check)


Title = Annotated[str, Field(min_length=1, max_length=MAX_TITLE), _at_most(MAX_TITLE), *Visible]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"  # ASCII spelled out: JSON Schema's \w is ASCII
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=NAME_PATTERN)]
Text = Annotated[str, Field(max_length=MAX_DESCRIPTION), _at_most(MAX_DESCRIPTION)]
Item = Annotated[str, Field(min_length=1, max_length=2_000), _at_most(2_000), *Visible]
Ref = Annotated[str, Field(min_length=1, max_length=200), _at_most(200), *Visible]


def _check_spec(value: dict[str, Any]) -> dict[str, Any]:
    if too_deep(value, MAX_DEPTH - 1) is not None:  # a body's field starts at level 2
        raise ValueError(depth_reason())
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_SPEC_BYTES:
        raise ValueError(f"is {size} bytes as JSON; at most {MAX_SPEC_BYTES} are accepted")
    return value


SPEC_HELP = (
    f"free-form JSON object: at most {MAX_SPEC_BYTES} bytes as JSON, nested at most "
    f"{MAX_DEPTH} levels in the body"
)
Spec = Annotated[dict[str, Any], AfterValidator(_check_spec), Field(description=SPEC_HELP)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class TaskSpec(_Strict):
    """The fields of a new task."""

    project: Name = "default"
    title: Title
    task_type: TaskType
    priority: Priority
    description: Text = ""
    acceptance_criteria: list[Item] = Field(default_factory=list, max_length=200)
    context_files: list[Item] = Field(default_factory=list, max_length=500)
    blocked_by: list[Ref] = Field(default_factory=list, max_length=200)
    parent_id: Ref | None = None
    labels: list[Name] = Field(default_factory=list, max_length=50)
    assignee: Ref | None = None
    pipeline_template: Ref | None = None
    source: Source = Source.MANUAL
    status: str = "backlog"
    spec: Spec = Field(default_factory=dict)


# Patch fields that always hold a value: the schema offers no null for them (a null is
# refused: leave a field out to keep its value).
KEEPS_A_VALUE = (
    "title", "task_type", "priority", "description", "acceptance_criteria", "context_files",
    "labels", "spec",
)  # fmt: skip


def _without_null(schema: dict[str, Any]) -> None:
    for name in KEEPS_A_VALUE:
        prop = schema["properties"][name]
        branches = [b for b in prop.pop("anyOf", []) if b != {"type": "null"}]
        prop.pop("default", None)
        if len(branches) == 1:
            prop.update(branches[0])
        elif branches:
            prop["anyOf"] = branches


class TaskPatch(_Strict):
    """Fields that may change after creation; status and edges have their own commands."""

    model_config = ConfigDict(json_schema_extra=_without_null)

    title: Title | None = None
    task_type: TaskType | None = None
    priority: Priority | None = None
    description: Text | None = None
    acceptance_criteria: list[Item] | None = None
    context_files: list[Item] | None = None
    labels: list[Name] | None = None
    assignee: Ref | None = None
    pipeline_template: Ref | None = None
    spec: Spec | None = None


def parse_model(model: type[M], data: Any, root: str = "") -> M:
    """Validate `data`; a ValidationFailed lists each field path and reason."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = [
            {"path": join_path(root, err["loc"]) or "body", "reason": _reason(err)}
            for err in e.errors()
        ]
        raise ValidationFailed(f"{len(errors)} field(s) are not valid", errors) from None


def _reason(err: Any) -> str:
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown field"
    return message.removeprefix("Value error, ")
