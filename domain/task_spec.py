"""What a person may send to create or change a task, validated with field paths."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from cairn.domain.errors import ValidationFailed
from cairn.domain.priority import parse_priority


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

Priority = Annotated[int, BeforeValidator(parse_priority)]
Title = Annotated[str, Field(min_length=1, max_length=300)]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][\w.\-]*$")]
Text = Annotated[str, Field(max_length=20_000)]
Item = Annotated[str, Field(min_length=1, max_length=2_000)]
Ref = Annotated[str, Field(min_length=1, max_length=200)]


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
    spec: dict[str, Any] = Field(default_factory=dict)


class TaskPatch(_Strict):
    """Fields that may change after creation; status and edges have their own commands."""

    title: Title | None = None
    task_type: TaskType | None = None
    priority: Priority | None = None
    description: Text | None = None
    acceptance_criteria: list[Item] | None = None
    context_files: list[Item] | None = None
    labels: list[Name] | None = None
    assignee: Ref | None = None
    pipeline_template: Ref | None = None
    spec: dict[str, Any] | None = None


def parse_model(model: type[M], data: Any, root: str = "") -> M:
    """Validate `data`; a ValidationFailed lists each field path and reason."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = [
            {"path": join_path(root, err["loc"]), "reason": _reason(err)} for err in e.errors()
        ]
        raise ValidationFailed(f"{len(errors)} field(s) are not valid", errors) from None


def join_path(root: str, loc: tuple[int | str, ...]) -> str:
    """`("steps", 0, "title")` -> `steps[0].title`, under `root` if given."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "body"


def _reason(err: Any) -> str:
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown field"
    return message.removeprefix("Value error, ")
