"""Board tasks and their runs: what a run of a task executes, and how each turn of its job
(claimed, re-queued, finished) moves the task, decided together so they append together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cairn.domain.errors import InvalidTransition
from cairn.domain.job import Job, JobStatus
from cairn.domain.task import Task, decide_transition
from cairn.domain.task_events import (
    TaskEvent,
    TaskRunFinished,
    TaskRunRequested,
    TaskRunStarted,
    TaskTransitioned,
)
from cairn.domain.task_states import Flags, Status, allowed_targets


def run_request(task: Task) -> tuple[str, Any]:
    """The job type and payload of a run: the task's spec, else its own words as instructions."""
    spec = task.spec
    if isinstance(spec.get("type"), str) and "payload" in spec:
        return spec["type"], spec["payload"]
    if spec:
        return "task", spec
    parts = [task.title]
    if task.description:
        parts.append(task.description)
    if task.acceptance_criteria:
        parts.append(
            "Acceptance criteria:\n" + "\n".join(f"- {c}" for c in task.acceptance_criteria)
        )
    if task.context_files:
        parts.append("Context files:\n" + "\n".join(f"- {c}" for c in task.context_files))
    return "task", {"task": {"instructions": "\n\n".join(parts)}}


def decide_run_request(task: Task, job_id: str, flags: Flags, *, force: bool) -> list[TaskEvent]:
    """Link a new run to the task. The scheduler runs ready tasks; "run now" (force) first
    moves the task to ready, recorded as forced. A task has one active run at a time."""
    if task.active_job_id is not None:
        return []
    events: list[TaskEvent] = []
    if task.status != Status.READY:
        if not force:
            raise InvalidTransition(
                f"task {task.id} is {task.status}; only a ready task is run "
                "(or pass through run now)",
                from_status=task.status,
            )
        events += decide_transition(task, Status.READY, {}, flags, force=True, reason="run now")[
            task.id
        ]
    events.append(TaskRunRequested(job_id=job_id))
    return events


def on_claim(task: Task, job: Job, flags: Flags, blockers: Mapping[str, Task]) -> list[TaskEvent]:
    """The task enters in_progress with the claim (the claim guard's one regular way in);
    the dependency guard holds here too, so `blockers` are the task's blockers as read."""
    started = TaskRunStarted(job_id=job.id, agent_id=job.worker_id or "")
    if task.status == Status.IN_PROGRESS:
        return [started]
    moved = decide_transition(
        task,
        Status.IN_PROGRESS,
        blockers,
        flags,
        by_claim=True,
        force=task.forced,
        reason=f"claimed by {job.worker_id}",
    )
    return [*moved[task.id], started]


def on_job_change(task: Task, job: Job, flags: Flags) -> list[TaskEvent]:
    """The task's side of a job leaving running: back to ready while it retries; in review
    (or done, with auto-approve) on success; blocked with a structured reason otherwise."""
    if task.active_job_id != job.id:
        return []
    status = JobStatus(job.status)
    if status == JobStatus.QUEUED:
        return _move(task, Status.READY, f"run re-queued after attempt {job.attempt}")
    if status in {JobStatus.RUNNING, JobStatus.CANCEL_REQUESTED}:
        return []
    error = (job.outcome or {}).get("error")
    finished = TaskRunFinished(job_id=job.id, outcome=status.value, error=error)
    if task.status == Status.CANCELLED:
        return [finished]
    if status == JobStatus.SUCCEEDED:
        target = Status.DONE if flags.auto_approve_review else Status.IN_REVIEW
        return [*_move(task, target, "run succeeded"), finished]
    code = {
        JobStatus.DEAD_LETTER: "run_dead_lettered",
        JobStatus.FAILED: "run_failed",
        JobStatus.CANCELLED: "run_cancelled",
    }[status]
    message = {
        "run_dead_lettered": f"the run failed {job.attempt} of {job.max_attempts} attempts",
        "run_failed": "the run failed and is not retryable",
        "run_cancelled": "the run was cancelled",
    }[code]
    reason = {
        "code": code,
        "message": message,
        "job_id": job.id,
        "attempt": job.attempt,
        "error": error,
    }
    return [*_move(task, Status.BLOCKED, message, reason), finished]


def _move(
    task: Task, to: Status, why: str, blocked: dict[str, Any] | None = None
) -> list[TaskEvent]:
    """The task follows its run when the table allows; a person may have moved it meanwhile
    (say, to in_review by hand), and the run's outcome must still be recorded."""
    if to not in allowed_targets(Status(task.status), Flags(auto_approve_review=True)):
        return []
    return [
        TaskTransitioned(
            from_status=task.status, to_status=to.value, reason=why, blocked_reason=blocked
        )
    ]
