"""The Task aggregate as a decider: `evolve` folds events into state, `decide` turns a command
and the states it depends on into events (or a DomainError saying what would be allowed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from cairn.domain.changes import changes_from, kept
from cairn.domain.decision import Decision
from cairn.domain.errors import (
    ClaimRequired,
    CorruptStream,
    CrossProjectDependency,
    DependencyCycle,
    DependencyUnresolved,
    InvalidTransition,
    NotFound,
    SelfDependency,
)
from cairn.domain.events import Event
from cairn.domain.tasks.events import (
    TaskChanges,
    TaskChildAdded,
    TaskCreated,
    TaskDependencyAdded,
    TaskDependencyRemoved,
    TaskDependentAdded,
    TaskDependentRemoved,
    TaskEvent,
    TaskRunFinished,
    TaskRunRequested,
    TaskRunStarted,
    TaskStepCompleted,
    TaskStepStarted,
    TaskTransitioned,
    TaskUpdated,
)
from cairn.domain.tasks.graph import cycle_if_added
from cairn.domain.tasks.spec import TaskPatch, TaskSpec
from cairn.domain.tasks.states import (
    CLAIM_GUARDED,
    DEPENDENCY_GUARDED,
    INITIAL_CHOICES,
    RESOLVED,
    Flags,
    Status,
    allowed_targets,
)

WAITING_ON_DEPENDENCIES = "waiting_on_dependencies"


class Task(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    project: str
    title: str
    task_type: str
    priority: int
    status: str
    description: str = ""
    acceptance_criteria: list[str] = []
    context_files: list[str] = []
    blocked_by: list[str] = []
    blocks: list[str] = []
    parent_id: str | None = None
    children_ids: list[str] = []
    labels: list[str] = []
    assignee: str | None = None
    pipeline_template: str | None = None
    source: str = "manual"
    spec: dict[str, Any] = {}
    current_step: str | None = None
    current_agent_id: str | None = None
    run_ids: list[str] = []
    active_job_id: str | None = None
    retry_count: int = 0
    error: dict[str, Any] | None = None
    blocked_reason: dict[str, Any] | None = None
    forced: bool = False
    created_at: str = ""
    updated_at: str = ""


# ---- evolve -------------------------------------------------------------------------------


def evolve(state: Task | None, event: TaskEvent, aggregate_id: str, version: int, ts: str) -> Task:
    """The state after `event`; a stream whose events are not in version order, or that does
    not start with its creation, is corrupt (CorruptStream: reloading cannot help)."""
    expected = 1 if state is None else state.version + 1
    if version != expected:
        raise CorruptStream(
            f"task {aggregate_id}: event version {version} follows version {expected - 1} "
            f"(expected {expected}); the stream is corrupt",
            aggregate_id=aggregate_id,
            version=version,
            expected_version=expected,
        )
    if isinstance(event, TaskCreated):
        fields = msgspec.structs.asdict(event)
        return Task(id=aggregate_id, version=1, created_at=ts, updated_at=ts, **fields)
    if state is None:
        raise CorruptStream(
            f"task {aggregate_id}: version 1 is {event.TYPE}, not task.created; the stream "
            "is corrupt",
            aggregate_id=aggregate_id,
            version=version,
        )
    return msgspec.structs.replace(_apply(state, event), version=version, updated_at=ts)


def _apply(s: Task, e: TaskEvent) -> Task:
    replace = msgspec.structs.replace
    match e:
        case TaskUpdated(changes=c):
            return _changed(s, c)
        case TaskTransitioned():
            return replace(s, status=e.to_status, forced=e.forced, blocked_reason=e.blocked_reason)
        case TaskDependencyAdded(blocker_id=b):
            return replace(s, blocked_by=[*s.blocked_by, b])
        case TaskDependencyRemoved(blocker_id=b):
            return replace(s, blocked_by=[x for x in s.blocked_by if x != b])
        case TaskDependentAdded(dependent_id=d):
            return replace(s, blocks=[*s.blocks, d])
        case TaskDependentRemoved(dependent_id=d):
            return replace(s, blocks=[x for x in s.blocks if x != d])
        case TaskChildAdded(child_id=c):
            return replace(s, children_ids=[*s.children_ids, c])
        case TaskRunRequested(job_id=job):
            return replace(s, run_ids=[*s.run_ids, job], active_job_id=job, error=None)
        case TaskRunStarted(agent_id=agent):
            return replace(s, current_agent_id=agent, current_step=None)  # no step run yet
        case TaskRunFinished():
            retries = s.retry_count + (1 if e.outcome != "succeeded" else 0)
            return replace(s, current_agent_id=None, current_step=e.step, error=e.error,
                           retry_count=retries, active_job_id=None)  # fmt: skip
        case TaskStepStarted():
            holder = e.agent_id or s.current_agent_id
            return replace(s, current_step=e.title or e.step_id, current_agent_id=holder)
        case TaskStepCompleted():
            return s  # the step stays current until the next starts or the run ends
    raise TypeError(f"not a task event: {e!r}")


def _changed(s: Task, c: TaskChanges) -> Task:
    return msgspec.structs.replace(
        s,
        title=kept(c.title, s.title),
        task_type=kept(c.task_type, s.task_type),
        priority=kept(c.priority, s.priority),
        description=kept(c.description, s.description),
        acceptance_criteria=kept(c.acceptance_criteria, s.acceptance_criteria),
        context_files=kept(c.context_files, s.context_files),
        labels=kept(c.labels, s.labels),
        assignee=kept(c.assignee, s.assignee),
        pipeline_template=kept(c.pipeline_template, s.pipeline_template),
        spec=kept(c.spec, s.spec),
    )


# ---- decide -------------------------------------------------------------------------------


def unresolved(task: Task, tasks: Mapping[str, Task]) -> list[dict[str, str]]:
    """The blockers of `task` that still block it, with their states."""
    return [
        {"id": b, "status": tasks[b].status if b in tasks else "missing"}
        for b in task.blocked_by
        if b not in tasks or tasks[b].status not in RESOLVED
    ]


def decide_create(task_id: str, spec: TaskSpec, tasks: Mapping[str, Task], force: bool) -> Decision:
    """Events for a new task, its parent's child edge and its blockers' mirror edges."""
    status = spec.status
    if status not in {s.value for s in INITIAL_CHOICES}:
        raise InvalidTransition(
            f"a new task starts in backlog or ready, not {status!r}",
            allowed_targets=sorted(s.value for s in INITIAL_CHOICES),
        )
    blockers = list(dict.fromkeys(spec.blocked_by))
    for b in blockers:
        _check_edge(task_id, spec.project, b, tasks)
    created = TaskCreated(
        project=spec.project, title=spec.title, task_type=spec.task_type.value,
        priority=spec.priority, status=status, description=spec.description,
        acceptance_criteria=list(spec.acceptance_criteria),
        context_files=list(spec.context_files), blocked_by=blockers, parent_id=spec.parent_id,
        labels=list(dict.fromkeys(spec.labels)), assignee=spec.assignee,
        pipeline_template=spec.pipeline_template, source=spec.source.value, spec=spec.spec,
        forced=False,
    )  # fmt: skip
    if status == Status.READY:
        waiting = [
            {"id": b, "status": tasks[b].status}
            for b in blockers
            if tasks[b].status not in RESOLVED
        ]
        if waiting and not force:
            raise DependencyUnresolved(
                "the task cannot start in ready: blockers are not done or cancelled",
                blockers=waiting,
            )
        created = msgspec.structs.replace(created, forced=bool(waiting))
    decision: Decision = {task_id: [created]}
    if spec.parent_id is not None:
        parent = _existing(tasks, spec.parent_id)
        if parent.project != spec.project:
            raise CrossProjectDependency(
                f"parent {parent.id} is in project {parent.project}, not {spec.project}",
                parent_id=parent.id,
            )
        decision[parent.id] = [TaskChildAdded(child_id=task_id)]
    for b in blockers:
        decision.setdefault(b, []).append(TaskDependentAdded(dependent_id=task_id))
    return decision


def decide_update(task: Task, patch: TaskPatch) -> Decision:
    """A field change; nothing when every value is already as asked. A null for a field a
    task cannot be without (its title, say) is refused."""
    changed = {
        k: v for k, v in patch.model_dump(exclude_unset=True, mode="json").items()
        if getattr(task, k) != v
    }  # fmt: skip
    if not changed:
        return {}
    return {task.id: [TaskUpdated(changes=changes_from(TaskChanges, changed))]}


def decide_transition(
    task: Task,
    to: str,
    tasks: Mapping[str, Task],
    flags: Flags,
    *,
    reason: str = "",
    force: bool = False,
    by_claim: bool = False,
) -> Decision:
    """Move `task` to `to` under the table and the guards; dependents of a reopened task that
    sit in ready move to blocked in the same decision, so no ready task waits on an open one."""
    current = Status(task.status)
    allowed = allowed_targets(current, flags)
    try:
        target = Status(to)
    except ValueError:
        target = None
    if target is None or target not in allowed:
        shown = to.value if isinstance(to, Status) else to  # a Status's repr is not for people
        raise InvalidTransition(
            f"a task in {current.value} cannot move to {shown!r}; allowed: "
            + (", ".join(t.value for t in allowed) or "none"),
            from_status=current.value,
            to_status=shown,
            allowed_targets=[t.value for t in allowed],
        )
    if target in CLAIM_GUARDED and not (by_claim or force):
        raise ClaimRequired(
            "in_progress is entered when a worker claims the task's run; "
            "run it (POST /api/v2/tasks/{id}/run) or pass force: true",
            allowed_targets=[t.value for t in allowed if t not in CLAIM_GUARDED],
        )
    waiting = unresolved(task, tasks) if target in DEPENDENCY_GUARDED else []
    if waiting and not force:
        raise DependencyUnresolved(
            f"{task.title!r} cannot enter {target.value}: "
            + ", ".join(f"{_title_of(w['id'], tasks)} is {w['status'].replace('_', ' ')}"
                        for w in waiting),
            blockers=waiting,
        )
    blocked_reason = None
    if target == Status.BLOCKED:
        blocked_reason = {"code": "manual", "message": reason or "blocked by hand"}
    event = TaskTransitioned(
        from_status=current.value, to_status=target.value, reason=reason,
        forced=bool(force and (waiting or target in CLAIM_GUARDED) and not by_claim),
        blocked_reason=blocked_reason,
    )  # fmt: skip
    decision: Decision = {task.id: [event]}
    if current in RESOLVED and target not in RESOLVED:
        for dependent_id in task.blocks:
            dependent = tasks.get(dependent_id)
            if dependent is not None and dependent.status == Status.READY:
                decision[dependent_id] = [_waiting_on(dependent, [task.id])]
    return decision


def decide_add_dependency(task: Task, blocker_id: str, tasks: Mapping[str, Task]) -> Decision:
    """Add `task blocked_by blocker`; `tasks` must hold the blocker's transitive blockers.

    A ready task gaining an unresolved blocker moves to blocked in the same decision."""
    if blocker_id in task.blocked_by:
        return {}
    _check_edge(task.id, task.project, blocker_id, tasks)
    cycle = cycle_if_added(task.id, blocker_id, {t.id: t.blocked_by for t in tasks.values()})
    if cycle:
        raise DependencyCycle(
            "the dependency would close a cycle: " + " -> ".join(cycle), cycle=cycle
        )
    events: list[Event] = [TaskDependencyAdded(blocker_id=blocker_id)]
    if task.status == Status.READY and tasks[blocker_id].status not in RESOLVED:
        events.append(_waiting_on(task, [blocker_id]))
    return {task.id: events, blocker_id: [TaskDependentAdded(dependent_id=task.id)]}


def decide_remove_dependency(task: Task, blocker_id: str) -> Decision:
    """Drop the edge `task blocked_by blocker` on both sides."""
    if blocker_id not in task.blocked_by:
        raise NotFound(
            f"{task.id} is not blocked by {blocker_id}", blocked_by=list(task.blocked_by)
        )
    return {
        task.id: [TaskDependencyRemoved(blocker_id=blocker_id)],
        blocker_id: [TaskDependentRemoved(dependent_id=task.id)],
    }


def _title_of(task_id: str, tasks: Mapping[str, Task]) -> str:
    return repr(tasks[task_id].title) if task_id in tasks else task_id


def can_move_to_ready(task: Task, tasks: Mapping[str, Task]) -> bool:
    """Whether a move to ready would be taken now: the table allows it from the task's state
    and no blocker is open."""
    return Status.READY in allowed_targets(Status(task.status), Flags()) and not unresolved(
        task, tasks)  # fmt: skip


def can_become_ready(task: Task, tasks: Mapping[str, Task]) -> bool:
    """A task blocked only by dependencies whose blockers are all resolved now."""
    return (
        task.status == Status.BLOCKED
        and (task.blocked_reason or {}).get("code") == WAITING_ON_DEPENDENCIES
        and not unresolved(task, tasks)
    )


def _waiting_on(task: Task, blocker_ids: list[str]) -> TaskTransitioned:
    return TaskTransitioned(
        from_status=task.status,
        to_status=Status.BLOCKED.value,
        reason="waiting on dependencies",
        blocked_reason={
            "code": WAITING_ON_DEPENDENCIES,
            "message": "waiting on dependencies: " + ", ".join(blocker_ids),
            "blockers": blocker_ids,
        },
    )


def _check_edge(task_id: str, project: str, blocker_id: str, tasks: Mapping[str, Task]) -> None:
    if blocker_id == task_id:
        raise SelfDependency("a task cannot block itself", blocker_id=blocker_id)
    blocker = _existing(tasks, blocker_id)
    if blocker.project != project:
        raise CrossProjectDependency(
            f"dependencies never cross projects: {blocker_id} is in {blocker.project}, "
            f"the task in {project}",
            blocker_id=blocker_id,
            blocker_project=blocker.project,
            project=project,
        )


def _existing(tasks: Mapping[str, Task], task_id: str) -> Task:
    if task_id not in tasks:
        raise NotFound(f"task {task_id} does not exist", task_id=task_id)
    return tasks[task_id]
