"""Task events: frozen facts in the past tense. Never edit one once written; add an upcaster."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class TaskEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = ""
    SCHEMA: ClassVar[int] = 1


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


class TaskUpdated(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "task.updated"
    changes: dict[str, Any]


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


class TaskRunStarted(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A run (job) of this task was claimed by a worker."""

    TYPE: ClassVar[str] = "task.run_started"
    job_id: str
    agent_id: str


class TaskRunFinished(TaskEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "task.run_finished"
    job_id: str
    outcome: str
    error: dict[str, Any] | None = None
    step: str | None = None


TASK_EVENTS: dict[str, type[TaskEvent]] = {
    cls.TYPE: cls
    for cls in (
        TaskCreated, TaskUpdated, TaskTransitioned, TaskDependencyAdded, TaskDependencyRemoved,
        TaskDependentAdded, TaskDependentRemoved, TaskChildAdded, TaskRunRequested,
        TaskRunStarted, TaskRunFinished,
    )
}  # fmt: skip


def task_event_from(type_: str, data: dict[str, Any]) -> TaskEvent:
    """Rebuild a task event from its envelope's type and data (upcasters go here)."""
    return msgspec.convert(data, TASK_EVENTS[type_])
