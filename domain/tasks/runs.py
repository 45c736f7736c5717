"""Board tasks and their runs: what a run of a task executes, and how each turn of its job
(requested, claimed, re-queued, finished, cancelled) moves the task, decided together so they
append together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cairn.domain.decision import Decision, events_for
from cairn.domain.errors import CairnError, DomainError, InvalidTransition
from cairn.domain.events import Event
from cairn.domain.jobs.attempts import decide_claim
from cairn.domain.jobs.events import JobCancelled, JobEvent, JobStepFinished, JobStepStarted
from cairn.domain.jobs.job import (
    Job,
    JobSource,
    JobStatus,
    SubmitOptions,
    apply_events,
    decide_cancel,
    decide_promote,
    decide_submit,
)
from cairn.domain.jobs.kinds import NormalizedJob
from cairn.domain.jobs.steps import stopped_in
from cairn.domain.tasks.events import (
    TaskEvent,
    TaskRunFinished,
    TaskRunRequested,
    TaskRunStarted,
    TaskStepCompleted,
    TaskStepStarted,
    TaskTransitioned,
)
from cairn.domain.tasks.pipelines import pipeline_for
from cairn.domain.tasks.spec import TaskSpec
from cairn.domain.tasks.states import Flags, Status, allowed_targets
from cairn.domain.tasks.task import Task, decide_create, decide_transition

# ---- requesting a run ------------------------------------------------------------------------


def run_request(
    task: Task, steps: Sequence[Mapping[str, str]] | None = None
) -> tuple[str, Any]:
    """The job type and payload of a run: the task's spec (a job of any type, or a task
    payload), else its own words as instructions; a task payload without steps takes
    `steps` (its template's, domain/planning/templates.py), else the built-in pipeline of its
    `pipeline_template` or type."""
    spec = task.spec
    if isinstance(spec.get("type"), str) and "payload" in spec:
        return spec["type"], spec["payload"]
    payload: dict[str, Any] = dict(spec) if spec else {"task": {"instructions": _words(task)}}
    body = dict(payload.get("task") or {})
    if not body.get("steps"):
        if steps is None:
            steps = [s.as_payload() for s in pipeline_for(task.task_type, task.pipeline_template)]
        body["steps"] = [dict(step) for step in steps]
        body.setdefault("instructions", _words(task))
    return "task", {**payload, "task": body}


def _words(task: Task) -> str:
    """The task's own words as a run's objective."""
    parts = [task.title]
    if task.description:
        parts.append(task.description)
    if task.acceptance_criteria:
        parts.append(
            "Acceptance criteria:\n" + "\n".join(f"- {c}" for c in task.acceptance_criteria)
        )
    if task.context_files:
        parts.append("Context files:\n" + "\n".join(f"- {c}" for c in task.context_files))
    return "\n\n".join(parts)


def run_submission(task: Task, job: NormalizedJob) -> list[JobEvent]:
    """The submission of a run of `task`: a board job at the task's priority."""
    options = SubmitOptions(
        project=task.project, source=JobSource.BOARD, priority=task.priority, task_id=task.id
    )
    return decide_submit(job, options)


def decide_run_request(
    task: Task, job_id: str, submission: Sequence[JobEvent], flags: Flags, *, force: bool
) -> Decision:
    """Queue a run of the task (`submission`, its job's events) and link it to the task. The
    scheduler runs ready tasks; "run now" (force) first moves the task to ready, recorded as
    forced. A task has one active run at a time: with one, nothing."""
    if task.active_job_id is not None:
        return {}
    events: list[Event] = []
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
    return {task.id: events, job_id: [*submission]}


def decide_changes_requested(task: Task, job_id: str, message: str, flags: Flags
                             ) -> list[Event]:  # fmt: skip
    """A task sent back with a message: the follow-up `job_id` becomes its run (its claim moves
    the task to in_progress, as any run's does); a done or blocked task first goes back to
    ready. The message is the run's reason, in the task's history. Not while a run is going."""
    if task.active_job_id is not None:
        raise InvalidTransition(
            f"task {task.id} has a run going ({task.active_job_id}); send that run a message "
            "instead, or wait for it to finish", active_job_id=task.active_job_id,
        )  # fmt: skip
    reason = f"changes requested: {message}"[:500]
    events: list[Event] = []
    if task.status in (Status.DONE, Status.BLOCKED):
        events += decide_transition(task, Status.READY, {}, flags, force=True,
                                    reason=reason)[task.id]  # fmt: skip
    elif task.status not in (Status.READY, Status.IN_REVIEW):
        raise InvalidTransition(
            f"task {task.id} is {task.status}; changes are asked of a task in review, done or "
            "blocked", from_status=task.status,
        )  # fmt: skip
    events.append(TaskRunRequested(job_id=job_id, reason=reason))
    return events


def decide_unrunnable(task: Task, error: CairnError) -> Decision:
    """A ready task whose spec makes no valid job is blocked, saying why (else the scheduler
    would try it again every round); a task in any other state is left as it is."""
    if task.status != Status.READY:
        return {}
    reason = {"code": "invalid_spec", "message": error.message, **error.details}
    return {task.id: [*_move(task, Status.BLOCKED, error.message, reason)]}


# ---- claims and the job's later turns ------------------------------------------------------


def decide_claim_run(
    job: Job,
    task: Task | None,
    blockers: Mapping[str, Task],
    flags: Flags,
    *,
    worker_id: str,
    epoch: int,
    lease_ms: int | None = None,
) -> Decision:
    """A worker claims a job: it runs at a new epoch and its task (if any) enters in_progress,
    together. A task that can no longer start (moved by hand, a blocker reopened) cancels the
    run instead, saying why, and records the run's end. `blockers` are the task's blockers as
    read, for the dependency guard."""
    claimed = decide_claim(job, worker_id, epoch, lease_ms)
    if task is None:
        return {job.id: [*claimed]}
    try:
        started = on_claim(task, _after(job, claimed), flags, blockers)
    except DomainError as refused:
        cancelled: list[JobEvent] = [
            JobCancelled(reason=f"its task could not start: {refused.message}")
        ]
        ended = on_job_change(task, _after(job, cancelled), flags)
        return {job.id: [*cancelled], task.id: [*ended]}
    return {job.id: [*claimed], task.id: [*started]}


def decide_with_task(
    job: Job, events: Sequence[JobEvent], after: Job, task: Task | None, flags: Flags
) -> Decision:
    """A job's `events` (`after`: the job once they apply) and its task's answer to them:
    the task follows its run's steps and status changes in the same append."""
    decision: Decision = {job.id: [*events]}
    if task is None or task.id != job.task_id:
        return decision
    followed: list[Event] = [*on_steps(task, job, events)]
    if after.status != job.status:
        followed += on_job_change(task, after, flags)
    if followed:
        decision[task.id] = followed
    return decision


def task_follows(job: Job, events: Sequence[JobEvent], after: Job) -> bool:
    """Whether a job's task (if it has one) has anything to answer `events` with, so a
    writer reads the task only then."""
    steps = any(isinstance(e, JobStepStarted | JobStepFinished) for e in events)
    return job.task_id is not None and (steps or after.status != job.status)


def on_steps(task: Task, job: Job, events: Sequence[JobEvent]) -> list[TaskEvent]:
    """The task's side of its active run's steps: the step it is on (for its card)."""
    if task.active_job_id != job.id:
        return []
    followed: list[TaskEvent] = []
    for e in events:
        if isinstance(e, JobStepStarted):
            followed.append(TaskStepStarted(job_id=job.id, step_id=e.step_id, title=e.title,
                                            agent_id=job.worker_id or ""))  # fmt: skip
        elif isinstance(e, JobStepFinished):
            followed.append(TaskStepCompleted(job_id=job.id, step_id=e.step_id, outcome=e.outcome))
    return followed


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
    return [*events_for(moved, task.id, TaskEvent), started]


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
    step = None if status == JobStatus.SUCCEEDED else stopped_in(job.steps)
    finished = TaskRunFinished(job_id=job.id, outcome=status.value, error=error, step=step)
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


# ---- a person's commands on a task's runs --------------------------------------------------


def decide_retry(task: Task, blockers: Mapping[str, Task], flags: Flags) -> Decision:
    """A blocked task (say, its run dead-lettered) goes back to ready, under the dependency
    guard; the scheduler then runs it."""
    if task.status != Status.BLOCKED:
        raise InvalidTransition(
            f"task {task.id} is {task.status}; only a blocked task is retried",
            from_status=task.status,
            allowed_from=[Status.BLOCKED.value],
        )
    return decide_transition(task, Status.READY, {task.id: task, **blockers}, flags, reason="retry")


def decide_cancel_task(
    task: Task, run: Job | None, tasks: Mapping[str, Task], flags: Flags
) -> Decision:
    """Cancel a task and its active run (`run`) together. A queued run is cancelled at once, so
    the task records the run's end in the same decision; a running one is asked to stop and
    the task records its end when the worker does. `tasks` holds the task's dependents."""
    decision = decide_transition(task, Status.CANCELLED, tasks, flags, reason="cancelled")
    if run is None or run.id != task.active_job_id:
        return decision
    if run.status not in {JobStatus.QUEUED, JobStatus.RUNNING}:
        return decision
    decision[run.id] = [*decide_cancel(run, "task cancelled")]
    if run.status == JobStatus.QUEUED:
        decision[task.id].append(TaskRunFinished(job_id=run.id, outcome="cancelled"))
    return decision


def decide_promote_quick_run(job: Job, task_id: str) -> Decision:
    """A board task made from a quick run, linked to it, in one decision; once only."""
    linked = decide_promote(job, task_id)
    if not linked:
        return {}
    spec = TaskSpec.model_validate(
        {
            "project": job.project,
            "title": _title(job.prompt or job.id),
            "task_type": "feature",
            "priority": job.priority if -1 <= job.priority <= 3 else 1,
            "description": job.prompt or "",
            "source": "promoted_quick_action",
            "spec": {"type": job.job_type, "payload": job.payload},
        }
    )
    return {job.id: [*linked], **decide_create(task_id, spec, {}, force=False)}


# ---- helpers -----------------------------------------------------------------------------


def _after(job: Job, events: list[JobEvent]) -> Job:
    # The job as `events` leave it, read only for its status, outcome and worker; the time
    # stamped on this throwaway state is never seen.
    return apply_events(job, events, job.updated_at)


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


def _title(prompt: str) -> str:
    line = prompt.strip().splitlines()[0] if prompt.strip() else "Quick run"
    return line if len(line) <= 300 else line[:297] + "..."
