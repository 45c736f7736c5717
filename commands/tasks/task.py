"""Task commands: create, update, transition, add and remove dependencies."""

from __future__ import annotations

from collections.abc import Iterable

from cairn.commands.runner import (
    CommandResult,
    Plan,
    at_version,
    command_id_for,
    guards_of,
    id_for_key,
    load_states,
    run_command,
    writes,
)
from cairn.domain.decision import Decision
from cairn.domain.errors import CrossProjectDependency, NotFound, VersionConflict
from cairn.domain.tasks.events import task_event_from
from cairn.domain.tasks.spec import TaskPatch, TaskSpec
from cairn.domain.tasks.states import DEPENDENCY_GUARDED, RESOLVED, Flags
from cairn.domain.tasks.task import (
    Task,
    decide_add_dependency,
    decide_create,
    decide_remove_dependency,
    decide_transition,
    decide_update,
    evolve,
)
from cairn.streams.envelope import Envelope
from cairn.streams.store import EventStore, Meta


def fold_task(events: list[Envelope]) -> Task | None:
    """A task's state from its stream (None if it has no events)."""
    state: Task | None = None
    for e in events:
        state = evolve(state, task_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)
    return state


async def load_tasks(store: EventStore, ids: Iterable[str]) -> dict[str, Task]:
    """The current state of each existing task among `ids` (unknown ids are left out)."""
    return await load_states(store, ids, "task", fold_task)


async def load_task(store: EventStore, task_id: str) -> Task:
    task = (await load_tasks(store, [task_id])).get(task_id)
    if task is None:
        raise NotFound(f"task {task_id} does not exist", task_id=task_id)
    return task


def _plan_of(
    decision: Decision, tasks: dict[str, Task], guard_ids: Iterable[str], subject: str
) -> Plan:
    versions = {i: t.version for i, t in tasks.items()}
    return Plan(
        writes=writes(decision, versions),
        guards=guards_of(list(guard_ids), versions, set(decision)),
        subject_version=versions.get(subject, 0),
    )


async def create_task(
    store: EventStore,
    spec: TaskSpec,
    *,
    actor: str,
    idempotency_key: str | None = None,
    force: bool = False,
) -> CommandResult:
    """Create a task (in backlog, or ready under the dependency guard)."""
    task_id = id_for_key(store.keys, "task", spec.project, idempotency_key)
    related = [*spec.blocked_by, *([spec.parent_id] if spec.parent_id else [])]
    for other in related:
        if not store.keys.is_aggregate_id(other) or (
            store.keys.partition_of_id(other) != store.keys.partition_of(spec.project)
        ):
            # A task of another partition is necessarily of another project (or unknown).
            await _refuse_foreign(store, other, spec.project)
    attempts = 0

    async def plan() -> Plan:
        # The append expects version 0 of the new stream, so the first try need not read it;
        # after a conflict, read it to tell "already exists" from a moved blocker.
        nonlocal attempts
        attempts += 1
        tasks = await load_tasks(store, [*([task_id] if attempts > 1 else []), *related])
        if task_id in tasks:
            raise VersionConflict(
                f"task {task_id} already exists (idempotency key reused after it expired?)",
                aggregate_id=task_id,
            )
        decision = decide_create(task_id, spec, tasks, force)
        return _plan_of(decision, tasks, spec.blocked_by, task_id)

    return await run_command(
        store, task_id, plan, meta=Meta(actor=actor),
        command_id=command_id_for("create", spec.project, idempotency_key),
    )  # fmt: skip


async def update_task(
    store: EventStore,
    task_id: str,
    patch: TaskPatch,
    *,
    actor: str,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> CommandResult:
    """Change a task's fields."""

    async def plan() -> Plan:
        task = at_version(await load_task(store, task_id), expected_version)
        return _plan_of(decide_update(task, patch), {task_id: task}, (), task_id)

    return await run_command(
        store, task_id, plan, meta=Meta(actor=actor),
        command_id=command_id_for("update", task_id, idempotency_key),
        retry_on_conflict=expected_version is None,
    )  # fmt: skip


async def transition_task(
    store: EventStore,
    task_id: str,
    to: str,
    flags: Flags,
    *,
    actor: str,
    reason: str = "",
    force: bool = False,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> CommandResult:
    """Move a task to another state; the blockers read for the guard must be unchanged at
    append, and dependents of a reopened task are blocked in the same append."""

    async def plan() -> Plan:
        task = at_version(await load_task(store, task_id), expected_version)
        related: list[str] = []
        if to in DEPENDENCY_GUARDED:
            related += task.blocked_by
        if task.status in RESOLVED and to not in RESOLVED:
            related += task.blocks
        tasks = {task_id: task, **await load_tasks(store, related)}
        decision = decide_transition(task, to, tasks, flags, reason=reason, force=force)
        guarded = task.blocked_by if to in DEPENDENCY_GUARDED else ()
        return _plan_of(decision, tasks, guarded, task_id)

    return await run_command(
        store, task_id, plan, meta=Meta(actor=actor),
        command_id=command_id_for(f"transition:{to}", task_id, idempotency_key),
        retry_on_conflict=expected_version is None,
    )  # fmt: skip


async def add_dependency(
    store: EventStore,
    task_id: str,
    blocker_id: str,
    *,
    actor: str,
    idempotency_key: str | None = None,
) -> CommandResult:
    """Make `task_id` wait on `blocker_id`; every task on the blocker's dependency closure is
    guarded, so two concurrent edges cannot close a cycle between them."""
    task = await load_task(store, task_id)
    if not store.keys.is_aggregate_id(blocker_id) or (
        store.keys.partition_of_id(blocker_id) != store.keys.partition_of_id(task_id)
    ):
        await _refuse_foreign(store, blocker_id, task.project)

    async def plan() -> Plan:
        tasks = await load_closure(store, [task_id, blocker_id])
        if task_id not in tasks:
            raise NotFound(f"task {task_id} does not exist", task_id=task_id)
        decision = decide_add_dependency(tasks[task_id], blocker_id, tasks)
        return _plan_of(decision, tasks, list(tasks), task_id)

    return await run_command(
        store, task_id, plan, meta=Meta(actor=actor),
        command_id=command_id_for(f"depend:{blocker_id}", task_id, idempotency_key),
    )  # fmt: skip


async def remove_dependency(
    store: EventStore,
    task_id: str,
    blocker_id: str,
    *,
    actor: str,
    idempotency_key: str | None = None,
) -> CommandResult:
    """Drop the edge `task_id blocked_by blocker_id` on both sides."""

    async def plan() -> Plan:
        tasks = await load_tasks(store, [task_id, blocker_id])
        if task_id not in tasks:
            raise NotFound(f"task {task_id} does not exist", task_id=task_id)
        return _plan_of(decide_remove_dependency(tasks[task_id], blocker_id), tasks, (), task_id)

    return await run_command(
        store, task_id, plan, meta=Meta(actor=actor),
        command_id=command_id_for(f"undepend:{blocker_id}", task_id, idempotency_key),
    )  # fmt: skip


async def load_closure(store: EventStore, roots: Iterable[str]) -> dict[str, Task]:
    """The roots and every task reachable through blocked_by, read level by level."""
    tasks: dict[str, Task] = {}
    frontier = list(roots)
    while frontier:
        found = await load_tasks(store, frontier)
        tasks.update(found)
        frontier = [b for t in found.values() for b in t.blocked_by if b not in tasks]
    return tasks


async def _refuse_foreign(store: EventStore, related_id: str, project: str) -> None:
    """Say why an id from another partition (so another project) or no id at all is refused."""
    if not store.keys.is_aggregate_id(related_id):
        raise NotFound(f"task {related_id} does not exist", task_id=related_id)
    other = (await load_tasks(store, [related_id])).get(related_id)
    if other is None:
        raise NotFound(f"task {related_id} does not exist", task_id=related_id)
    raise CrossProjectDependency(
        f"dependencies never cross projects: {related_id} is in {other.project}, not {project}",
        blocker_id=related_id,
        blocker_project=other.project,
        project=project,
    )
