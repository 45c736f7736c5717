"""A board task follows its pull request: merged, it is done (and its dependents start); closed
unmerged, it is ready again (or cancelled, by the PR's policy); failed checks and requested
changes run a follow-up of the PR's last job, the limit of automatic fixes blocks it. The PR's
facts, what they call for and the task's moves are decided together, so they append together
(a restart between a failed check and its follow-up loses neither, and runs it once)."""

from __future__ import annotations

from collections.abc import Sequence

from cairn.domain.decision import Decision
from cairn.domain.events import Event
from cairn.domain.jobs.followups import decide_follow_up
from cairn.domain.jobs.job import TERMINAL, Job
from cairn.domain.jobs.pulls import (
    PrClosed,
    PrFollowUpDeferred,
    PrFollowUpRequested,
    PrGaveUp,
    PrMerged,
    PullEvent,
    PullRequest,
    Reaction,
)
from cairn.domain.tasks.events import TaskRunRequested, TaskTransitioned
from cairn.domain.tasks.states import Flags, Status, allowed_targets
from cairn.domain.tasks.task import Task


def decide_on_pull(
    pr: PullRequest, facts: Sequence[PullEvent], reaction: Reaction | None, last_job: Job | None,
    task: Task | None, flags: Flags, follow_up_id: str,
) -> Decision:  # fmt: skip
    """The PR's new facts, the follow-up a reaction asks for (when the PR's last job has
    finished and the task runs nothing), and the task's moves."""
    pr_events: list[Event] = [*facts]
    decision: Decision = {}
    task_events: list[Event] = []
    if reaction is not None and reaction.gave_up:
        pr_events.append(PrGaveUp(reason=reaction.message))
        if task is not None:
            blocked: dict[str, object] = {"code": "pr_checks_failing", "pr": pr.url,
                                          "message": reaction.message}
            task_events += _moved(task, Status.BLOCKED, reaction.message, blocked)
    elif reaction is not None and _busy(last_job, task):
        # A run of the PR is going: the follow-up waits for it, and runs at a look after it.
        pr_events.append(PrFollowUpDeferred(reason=reaction.reason, message=reaction.message,
                                            auto=reaction.auto))  # fmt: skip
    elif reaction is not None and _can_follow_up(last_job, task):
        assert last_job is not None
        follow = decide_follow_up(last_job, follow_up_id, reaction.message)
        decision.update(follow)
        pr_events.append(PrFollowUpRequested(job_id=follow_up_id, reason=reaction.reason,
                                             auto=reaction.auto))  # fmt: skip
        if task is not None and last_job.task_id == task.id:
            why = f"{reaction.reason.replace('_', ' ')} on {pr.url}"
            if task.status in (Status.DONE, Status.BLOCKED):
                task_events += _moved(task, Status.READY, why)
            task_events.append(TaskRunRequested(job_id=follow_up_id, reason=why))
    if task is not None:
        for fact in facts:
            if isinstance(fact, PrMerged) and task.status != Status.DONE:
                task_events += _moved(task, Status.DONE, f"PR merged: {pr.url}")
            elif isinstance(fact, PrClosed) and task.status not in (Status.DONE,
                                                                     Status.CANCELLED):
                to = Status.CANCELLED if pr.policy.on_close == "cancel" else Status.READY
                task_events += _moved(task, to, f"PR closed unmerged: {pr.url}")
    decision[pr.id] = [*decision.get(pr.id, []), *pr_events]
    if task_events:
        decision[task.id] = [*decision.get(task.id, []), *task_events]  # type: ignore[union-attr]
    return decision


def _busy(last_job: Job | None, task: Task | None) -> bool:
    """A run of the PR (or of its task) is going, and the last job is one a follow-up can
    continue once it ends."""
    if last_job is None or last_job.job_type != "task":
        return False
    if last_job.normalized.get("targetRuntime") == "shell":
        return False
    running = last_job.status not in TERMINAL
    return running or (task is not None and task.active_job_id is not None)


def _can_follow_up(last_job: Job | None, task: Task | None) -> bool:
    """A follow-up continues a finished agent's task job; a task runs one run at a time. (What
    cannot be followed up still has its facts recorded.)"""
    if last_job is None or last_job.status not in TERMINAL or last_job.job_type != "task":
        return False
    if last_job.normalized.get("targetRuntime") == "shell":
        return False
    return task is None or task.active_job_id is None


def _moved(task: Task, to: Status, why: str, blocked: dict[str, object] | None = None
           ) -> list[Event]:  # fmt: skip
    """The PR decides where the task is: its move is recorded as the PR's (forced past the
    table where it has to be: a merged PR's task is done, whatever column it was in)."""
    if task.status == to:
        return []
    forced = to not in allowed_targets(Status(task.status), Flags())
    return [TaskTransitioned(from_status=task.status, to_status=to.value, reason=why,
                             blocked_reason=blocked, forced=forced)]  # fmt: skip
