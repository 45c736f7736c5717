"""Task events: frozen facts in the past tense. Never edit one once written; add an upcaster."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from msgspec import UNSET, UnsetType

from cairn.domain.events import Event
from cairn.domain.upcast import Upcaster, decode_event


class TaskEvent(Event, frozen=True, kw_only=True, omit_defaults=True):
    pass


class TaskCreated(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "task.created"
    project: str
    title: str
    task_type: str
    priority: int
    status: str
    description: str = ""
    acceptance_criteria: list[str] = []
    context_files: list[str] = []
    blocked_by: list[str] = []
    parent_id: str | None = None
    labels: list[str] = []
    assignee: str | None = None
    pipeline_template: str | None = None
    source: str = "manual"
    spec: dict[str, Any] = {}  # execution spec (job payload) for the scheduler
    forced: bool = False


class TaskChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The fields a task.updated sets; a field left out (UNSET) keeps its value. Written as
    the JSON object of the fields set, as it always was."""

    title: str | UnsetType = UNSET
    task_type: str | UnsetType = UNSET
    priority: int | UnsetType = UNSET
    description: str | UnsetType = UNSET
    acceptance_criteria: list[str] | UnsetType = UNSET
    context_files: list[str] | UnsetType = UNSET
    labels: list[str] | UnsetType = UNSET
    assignee: str | UnsetType | None = UNSET
    pipeline_template: str | UnsetType | None = UNSET
    spec: dict[str, Any] | UnsetType = UNSET


class TaskUpdated(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "task.updated"
    changes: TaskChanges


class TaskTransitioned(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "task.transitioned"
    from_status: str
    to_status: str
    reason: str = ""
    forced: bool = False
    blocked_reason: dict[str, Any] | None = None


class TaskDependencyAdded(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "task.dependency_added"
    blocker_id: str


class TaskDependencyRemoved(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "task.dependency_removed"
    blocker_id: str


class TaskDependentAdded(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    """The mirror edge on the blocker: `blocks` gains the dependent."""

    TYPE: ClassVar[str] = "task.dependent_added"
    dependent_id: str


class TaskDependentRemoved(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "task.dependent_removed"
    dependent_id: str


class TaskChildAdded(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "task.child_added"
    child_id: str


class TaskRunRequested(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A job (a run of this task) was queued; the task has one active run at a time."""

    TYPE: ClassVar[str] = "task.run_requested"
    job_id: str
    reason: str = ""  # why, when a person said (a follow-up: "changes requested: ...")


class TaskRunStarted(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A run (job) of this task was claimed by a worker."""

    TYPE: ClassVar[str] = "task.run_started"
    job_id: str
    agent_id: str


class TaskRunFinished(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A run ended; `step` names the step it stopped in when that step did not succeed."""

    TYPE: ClassVar[str] = "task.run_finished"
    job_id: str
    outcome: str
    error: dict[str, Any] | None = None
    step: str | None = None


class TaskStepStarted(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A step of the task's active run began (`title`, if it has one, names it on the card)."""

    TYPE: ClassVar[str] = "task.step_started"
    job_id: str
    step_id: str
    title: str | None = None
    agent_id: str = ""


class TaskStepCompleted(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "task.step_completed"
    job_id: str
    step_id: str
    outcome: str


TASK_EVENTS: dict[str, type[TaskEvent]] = {
    cls.TYPE: cls
    for cls in (
        TaskCreated, TaskUpdated, TaskTransitioned, TaskDependencyAdded, TaskDependencyRemoved,
        TaskDependentAdded, TaskDependentRemoved, TaskChildAdded, TaskRunRequested,
        TaskRunStarted, TaskRunFinished, TaskStepStarted, TaskStepCompleted,
    )
}  # fmt: skip


# (type, schema n) -> its data as schema n + 1; empty while every task event is at schema 1.
TASK_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def task_event_from(type_: str, schema: int, data: dict[str, Any]) -> TaskEvent:
    """Rebuild a task event from its envelope's type, schema and data, upcast to the current
    schema (UnknownEvent for a type or schema not known here)."""
    return decode_event(TASK_EVENTS, TASK_UPCASTERS, type_, schema, data)
