"""The ImportJob aggregate as a decider: one PRD document imported into one project, revision
by revision. A commit writes the import and every task and edge it changes in one decision;
with auto_ready the import releases its tasks to ready in dependency order, never more than
its hint in ready or in progress at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from cairn.domain.decision import Decision
from cairn.domain.errors import CorruptStream
from cairn.domain.events import Event
from cairn.domain.planning.import_events import (
    ImportCommitted,
    ImportedTask,
    ImportEvent,
    ImportPlanFailed,
    ImportPlanned,
    ImportPlanRequested,
    ImportTasksReleased,
)
from cairn.domain.planning.preview import Diff, ImportRequest, Plan
from cairn.domain.tasks.events import TaskEvent
from cairn.domain.tasks.spec import TaskPatch, TaskSpec
from cairn.domain.tasks.states import Flags, Status, allowed_targets
from cairn.domain.tasks.task import (
    Task,
    decide_add_dependency,
    decide_create,
    decide_remove_dependency,
    decide_transition,
    decide_update,
    unresolved,
)
from cairn.domain.tasks.task import evolve as evolve_task

ACTIVE = frozenset({Status.READY, Status.IN_PROGRESS})


class ImportJob(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    project: str
    document: str
    status: str  # planning, planned, plan_failed, committed
    revision: int = 0
    granularity: str = "balanced"
    planner: str = "deterministic"
    auto_ready: bool = False
    max_parallelism_hint: int = 4
    source_sha256: str = ""
    preview_id: str = ""
    tasks: dict[str, ImportedTask] = {}  # by key, removed ones kept
    order: list[str] = []  # task ids in wave order
    created_task_ids: list[str] = []
    released: list[str] = []
    edge_count: int = 0
    warnings: list[dict[str, Any]] = []
    last: dict[str, list[str]] = {}  # the last commit's added, updated, removed, cancelled
    planner_job_id: str | None = None
    planning: dict[str, Any] = {}  # the agent planner's request (without the PRD)
    plan: dict[str, Any] | None = None
    plan_errors: list[dict[str, str]] = []
    created_at: str = ""
    updated_at: str = ""

    @property
    def pending_release(self) -> bool:
        """auto_ready tasks the import has yet to release."""
        released = set(self.released)
        return self.auto_ready and any(t not in released for t in self.order)


def evolve(state: ImportJob | None, event: ImportEvent, aggregate_id: str, version: int,
           ts: str) -> ImportJob:  # fmt: skip
    """The state after `event`; events out of version order are a corrupt stream."""
    expected = 1 if state is None else state.version + 1
    if version != expected:
        raise CorruptStream(
            f"import {aggregate_id}: event version {version}, expected "
            f"{expected}; the stream is corrupt",
            aggregate_id=aggregate_id,
        )
    if state is None:
        if not isinstance(event, ImportCommitted | ImportPlanRequested):
            raise CorruptStream(f"import {aggregate_id}: version 1 is {event.TYPE}; the stream "
                                "is corrupt", aggregate_id=aggregate_id)  # fmt: skip
        state = ImportJob(id=aggregate_id, version=0, project=event.project,
                          document=event.document, status="planning", created_at=ts)  # fmt: skip
    return msgspec.structs.replace(_apply(state, event), version=version, updated_at=ts)


def _apply(s: ImportJob, e: ImportEvent) -> ImportJob:
    replace = msgspec.structs.replace
    match e:
        case ImportCommitted():
            created = [t.task_id for t in e.tasks if t.key in e.added]
            return replace(
                s, status="committed", revision=e.revision, granularity=e.granularity,
                planner=e.planner, auto_ready=e.auto_ready,
                max_parallelism_hint=e.max_parallelism_hint, source_sha256=e.source_sha256,
                preview_id=e.preview_id, tasks={t.key: t for t in e.tasks}, order=e.order,
                created_task_ids=[*s.created_task_ids, *created], edge_count=e.edge_count,
                warnings=e.warnings,
                last={"added": e.added, "updated": e.updated, "removed": e.removed,
                      "cancelled": e.cancelled},
            )  # fmt: skip
        case ImportTasksReleased():
            return replace(s, released=[*s.released, *e.task_ids, *e.moved_by_others])
        case ImportPlanRequested():
            return replace(s, status="planning", planner="agent", planner_job_id=e.job_id,
                           planning=e.request, plan=None, plan_errors=[])  # fmt: skip
        case ImportPlanned():
            return replace(s, status="planned", plan=e.plan, preview_id=e.preview_id)
        case ImportPlanFailed():
            return replace(s, status="plan_failed", plan_errors=e.errors)
    raise TypeError(f"not an import event: {e!r}")


# ---- commit -----------------------------------------------------------------------------------


def decide_commit(
    state: ImportJob | None, import_id: str, request: ImportRequest, plan: Plan, changes: Diff,
    task_ids: Mapping[str, str], tasks: Mapping[str, Task], flags: Flags, *,
    preview_id: str, source_sha256: str,
) -> Decision:  # fmt: skip
    """The import's new revision and every task event it makes: new keys created (blockers
    first, in backlog), changed words updated, edges between the import's tasks added and
    dropped, removed keys reported (and cancelled if asked, where the table allows). `tasks`
    holds the import's existing tasks and their blockers; `task_ids` the id of each key."""
    same = state is not None and (
        state.status,
        state.source_sha256,
        state.auto_ready,
        state.max_parallelism_hint,
    ) == ("committed", source_sha256, request.auto_ready, request.max_parallelism_hint)
    if same and not (changes.added or changes.updated or changes.removed):
        return {}
    graph = plan.graph
    decision: Decision = {import_id: []}
    states = dict(tasks)
    previous = state.tasks if state else {}
    updated = {c.key for c in changes.updated}
    cancelled: list[str] = []
    for planned in graph.tasks:
        task_id = task_ids[planned.key]
        blockers = [task_ids[k] for k in planned.depends_on]
        if planned.key in changes.added:
            spec = TaskSpec.model_validate({
                "project": request.project, "title": planned.title,
                "task_type": planned.task_type, "priority": planned.priority,
                "description": planned.description,
                "acceptance_criteria": list(planned.acceptance_criteria),
                "blocked_by": blockers, "labels": request.labels, "source": "prd_import",
                "spec": request.spec,
            })  # fmt: skip
            _merge(decision, states, decide_create(task_id, spec, states, force=False))
            continue
        if planned.key not in updated or task_id not in states:
            continue
        before = previous[planned.key]
        patch = {
            "title": planned.title, "description": planned.description,
            "acceptance_criteria": list(planned.acceptance_criteria),
            "task_type": planned.task_type, "priority": planned.priority,
        }  # fmt: skip
        changed = {k: v for k, v in patch.items() if getattr(before, k) != v}
        if changed:
            patched = TaskPatch.model_validate(changed)
            _merge(decision, states, decide_update(states[task_id], patched))
        if before.removed and states[task_id].status == Status.CANCELLED:
            _merge(
                decision,
                states,
                decide_transition(
                    states[task_id], Status.BACKLOG, states, flags, reason="back in the PRD"
                ),
            )
        old = {task_ids.get(k, previous[k].task_id) for k in before.depends_on if k in previous}
        for blocker in blockers:
            if blocker not in states[task_id].blocked_by:
                _merge(decision, states, decide_add_dependency(states[task_id], blocker, states))
        for blocker in old - set(blockers):
            if blocker in states[task_id].blocked_by:
                _merge(decision, states, decide_remove_dependency(states[task_id], blocker))
    for gone in changes.removed:
        task = states.get(gone.task_id)
        if request.cancel_removed and task is not None and Status.CANCELLED in allowed_targets(
            Status(task.status), flags
        ):  # fmt: skip
            _merge(decision, states, decide_transition(task, Status.CANCELLED, states, flags,
                                                       reason="removed from the PRD"))  # fmt: skip
            cancelled.append(gone.task_id)
    imported = [
        ImportedTask(key=t.key, task_id=task_ids[t.key], title=t.title,
                     description=t.description, acceptance_criteria=list(t.acceptance_criteria),
                     task_type=t.task_type, priority=t.priority, depends_on=list(t.depends_on))
        for t in graph.tasks
    ] + [msgspec.structs.replace(t, removed=True) for t in previous.values()
         if t.key not in {p.key for p in graph.tasks}]  # fmt: skip
    decision[import_id] = [ImportCommitted(
        project=request.project, document=plan.document,
        revision=(state.revision if state else 0) + 1, granularity=request.granularity,
        planner=plan.planner, auto_ready=request.auto_ready,
        max_parallelism_hint=request.max_parallelism_hint, source_sha256=source_sha256,
        preview_id=preview_id, tasks=imported, order=[task_ids[t.key] for t in graph.tasks],
        added=changes.added, updated=sorted(updated), removed=[t.key for t in changes.removed],
        cancelled=cancelled, edge_count=len(graph.edges), warnings=plan.warnings,
    )]  # fmt: skip
    return decision


def _merge(decision: Decision, states: dict[str, Task], more: Decision) -> None:
    """Add `more` to `decision`, keeping `states` as the tasks will be after it, so the next
    decider sees its predecessors' effects."""
    for aggregate_id, events in more.items():
        decision.setdefault(aggregate_id, []).extend(events)
        for event in events:
            before = states.get(aggregate_id)
            version = before.version + 1 if before else 1
            if isinstance(event, TaskEvent):
                states[aggregate_id] = evolve_task(before, event, aggregate_id, version, "")


# ---- auto_ready -------------------------------------------------------------------------------


def decide_release(state: ImportJob, tasks: Mapping[str, Task], flags: Flags) -> Decision:
    """Move the next of the import's backlog tasks whose blockers are all resolved to ready,
    in wave order, while fewer than the hint of its released tasks are ready or in progress.
    `tasks` holds the import's tasks and their blockers."""
    if not state.pending_release:
        return {}
    released = set(state.released)
    room = state.max_parallelism_hint - sum(
        1 for i in state.released if i in tasks and tasks[i].status in ACTIVE
    )
    moving: list[str] = []
    others: list[str] = []
    events: Decision = {}
    for task_id in state.order:
        task = tasks.get(task_id)
        if task_id in released or task is None:
            continue
        if task.status != Status.BACKLOG:
            others.append(task_id)
        elif len(moving) < room and not unresolved(task, tasks):
            moved = decide_transition(task, Status.READY, tasks, flags,
                                      reason=f"auto-ready: import {state.id}")  # fmt: skip
            events[task_id] = moved[task_id]
            moving.append(task_id)
    if not moving and not others:
        return {}
    return {state.id: [ImportTasksReleased(task_ids=moving, moved_by_others=others)], **events}


def plan_events(job_id: str, project: str, document: str, request: dict[str, Any]) -> list[Event]:
    """An agent planner's job queued for the import."""
    return [ImportPlanRequested(project=project, document=document, job_id=job_id,
                                request=request)]  # fmt: skip


def decide_plan_result(
    state: ImportJob,
    job_id: str,
    plan: dict[str, Any] | None,
    preview_id: str,
    errors: list[dict[str, str]],
    reason: str,
) -> Decision:
    """The agent's plan recorded (or why there is none); only for the job the import waits
    on, once."""
    if state.planner_job_id != job_id or state.status != "planning":
        return {}
    if plan is None:
        return {state.id: [ImportPlanFailed(job_id=job_id, reason=reason, errors=errors)]}
    return {state.id: [ImportPlanned(job_id=job_id, preview_id=preview_id, plan=plan)]}
