"""How a board task follows its run."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from cairn.domain.decision import events_for
from cairn.domain.errors import DependencyUnresolved, InvalidTransition, ValidationFailed
from cairn.domain.jobs.events import (
    JobCancelled,
    JobCancelRequested,
    JobClaimed,
    JobEvent,
    JobFailed,
    JobPromoted,
    JobStepFinished,
    JobStepStarted,
    JobSubmitted,
    JobSucceeded,
)
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.tasks.events import (
    TaskCreated,
    TaskEvent,
    TaskRunFinished,
    TaskRunRequested,
    TaskRunStarted,
    TaskStepCompleted,
    TaskStepStarted,
    TaskTransitioned,
)
from cairn.domain.tasks.runs import (
    decide_cancel_task,
    decide_claim_run,
    decide_promote_quick_run,
    decide_retry,
    decide_run_request,
    decide_unrunnable,
    decide_with_task,
    on_job_change,
    run_request,
    run_submission,
    task_follows,
)
from cairn.domain.tasks.states import Flags
from cairn.domain.tasks.task import Task
from cairn.domain.tasks.task import evolve as evolve_task

NOOP = normalize_job("noop", {}, ContractSettings())


def task(status: str, **kw: Any) -> Task:
    base = Task(id="task-00-a", version=3, project="p", title="Fix login", task_type="bug_fix",
                priority=1, status=status, active_job_id="job-00-j")  # fmt: skip
    return msgspec.structs.replace(base, **kw)


def job(status: str, **kw: Any) -> Job:
    base = Job(id="job-00-j", version=5, project="p", job_type="task", submitted_type="task",
               source="board", payload={}, normalized={}, required_capabilities=["codex"],
               task_id="task-00-a", status=status, attempt=2, max_attempts=3)  # fmt: skip
    return msgspec.structs.replace(base, **kw)


@pytest.mark.parametrize(("auto", "target"), [(False, "in_review"), (True, "done")])
def test_success_moves_to_review_or_done(auto: bool, target: str) -> None:
    moved, finished = on_job_change(
        task("in_progress"), job("succeeded"), Flags(auto_approve_review=auto)
    )
    assert moved.to_status == target  # type: ignore[attr-defined]
    assert finished.outcome == "succeeded"  # type: ignore[attr-defined]


def test_dead_letter_blocks_with_a_structured_reason() -> None:
    outcome = {"status": "dead_letter", "error": {"code": "exit_status"}}
    moved, _ = on_job_change(task("in_progress"), job("dead_letter", outcome=outcome), Flags())
    reason = moved.blocked_reason  # type: ignore[attr-defined]
    assert moved.to_status == "blocked"  # type: ignore[attr-defined]
    assert {k: reason[k] for k in ("code", "job_id", "attempt")} == {
        "code": "run_dead_lettered",
        "job_id": "job-00-j",
        "attempt": 2,
    }
    assert reason["message"]


def test_requeue_sends_the_task_back_to_ready() -> None:
    [moved] = on_job_change(task("in_progress"), job("queued"), Flags())
    assert moved.to_status == "ready"  # type: ignore[attr-defined]


def test_a_task_moved_by_hand_still_records_the_outcome() -> None:
    [finished] = on_job_change(task("in_review"), job("succeeded"), Flags())
    assert finished.outcome == "succeeded"  # type: ignore[attr-defined]


def test_run_request_is_once_and_built_from_the_task() -> None:
    fresh = msgspec.structs.replace(
        task("ready"), active_job_id=None, acceptance_criteria=["works"]
    )
    kind, payload = run_request(fresh)
    assert kind == "task" and "Fix login" in payload["task"]["instructions"]
    assert "- works" in payload["task"]["instructions"]
    contract = ContractSettings(default_repository="acme/app")
    submission = run_submission(fresh, normalize_job(kind, payload, contract))
    assert decide_run_request(task("ready"), "job-00-k", submission, Flags(), force=False) == {}
    decision = decide_run_request(fresh, "job-00-k", submission, Flags(), force=False)
    assert list(decision) == ["task-00-a", "job-00-k"]  # the subject first
    assert decision["task-00-a"] == [TaskRunRequested(job_id="job-00-k")]
    [submitted] = decision["job-00-k"]
    assert isinstance(submitted, JobSubmitted)
    assert (submitted.task_id, submitted.source, submitted.priority) == ("task-00-a", "board", 1)


def test_run_now_moves_the_task_to_ready_first_and_the_scheduler_runs_only_ready() -> None:
    backlog = task("backlog", active_job_id=None)
    submission = run_submission(backlog, NOOP)
    with pytest.raises(InvalidTransition):
        decide_run_request(backlog, "job-00-k", submission, Flags(), force=False)
    moved, requested = decide_run_request(backlog, "job-00-k", submission, Flags(), force=True)[
        "task-00-a"
    ]
    assert isinstance(moved, TaskTransitioned) and moved.to_status == "ready"
    assert moved.reason == "run now"
    assert requested == TaskRunRequested(job_id="job-00-k")


@pytest.mark.parametrize("status", ["backlog", "in_progress", "in_review", "done", "blocked"])
def test_an_unrunnable_spec_blocks_only_a_ready_task(status: str) -> None:
    refused = ValidationFailed("payload: bad", [{"path": "payload", "reason": "bad"}])
    assert decide_unrunnable(task(status), refused) == {}
    [moved] = decide_unrunnable(task("ready"), refused)["task-00-a"]
    assert isinstance(moved, TaskTransitioned) and moved.to_status == "blocked"
    assert moved.blocked_reason == {
        "code": "invalid_spec",
        "message": "payload: bad",
        "errors": [{"path": "payload", "reason": "bad"}],
    }


def test_a_claim_starts_the_task_with_its_run() -> None:
    decision = decide_claim_run(
        job("queued"), task("ready"), {}, Flags(), worker_id="w1", epoch=1, lease_ms=500
    )
    [claimed] = decision["job-00-j"]
    assert isinstance(claimed, JobClaimed) and (claimed.worker_id, claimed.epoch) == ("w1", 1)
    moved, started = decision["task-00-a"]
    assert isinstance(moved, TaskTransitioned) and moved.to_status == "in_progress"
    assert started == TaskRunStarted(job_id="job-00-j", agent_id="w1")


def test_a_claim_whose_task_cannot_start_cancels_the_run_saying_why() -> None:
    blocked = task("ready", blocked_by=["task-00-b"])
    blocker = msgspec.structs.replace(task("in_progress"), id="task-00-b", active_job_id=None,
                                      title="Set up auth")  # fmt: skip
    decision = decide_claim_run(
        job("queued"), blocked, {"task-00-b": blocker}, Flags(), worker_id="w1", epoch=1
    )
    [cancelled] = decision["job-00-j"]
    assert isinstance(cancelled, JobCancelled)
    assert "'Set up auth' is in progress" in cancelled.reason
    moved, finished = decision["task-00-a"]
    assert isinstance(moved, TaskTransitioned) and moved.to_status == "blocked"
    assert moved.blocked_reason and moved.blocked_reason["code"] == "run_cancelled"
    assert finished == TaskRunFinished(job_id="job-00-j", outcome="cancelled")


def test_a_claim_of_a_job_that_is_not_queued_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        decide_claim_run(job("running"), task("ready"), {}, Flags(), worker_id="w", epoch=2)


def test_a_job_without_a_task_is_claimed_alone() -> None:
    decision = decide_claim_run(job("queued"), None, {}, Flags(), worker_id="w", epoch=1)
    assert list(decision) == ["job-00-j"]


@pytest.mark.parametrize(
    ("status", "job_events", "task_end"),
    [
        ("queued", [JobCancelled(reason="task cancelled")], [TaskRunFinished(
            job_id="job-00-j", outcome="cancelled")]),
        ("running", [JobCancelRequested(reason="task cancelled")], []),
        ("cancel_requested", None, []),
        ("succeeded", None, []),
    ],
)  # fmt: skip
def test_cancelling_a_task_cancels_its_active_run(
    status: str, job_events: list[JobEvent] | None, task_end: list[TaskRunFinished]
) -> None:
    decision = decide_cancel_task(task("ready"), job(status), {}, Flags())
    moved, *end = decision["task-00-a"]
    assert isinstance(moved, TaskTransitioned) and moved.to_status == "cancelled"
    assert end == task_end
    assert decision.get("job-00-j") == job_events


def test_a_task_is_retried_only_from_blocked_and_under_the_dependency_guard() -> None:
    with pytest.raises(InvalidTransition):
        decide_retry(task("ready"), {}, Flags())
    [moved] = decide_retry(task("blocked"), {}, Flags())["task-00-a"]
    assert isinstance(moved, TaskTransitioned) and moved.to_status == "ready"
    waiting = task("blocked", blocked_by=["task-00-b"])
    blocker = msgspec.structs.replace(task("ready"), id="task-00-b")
    with pytest.raises(DependencyUnresolved):
        decide_retry(waiting, {"task-00-b": blocker}, Flags())


def test_the_task_follows_its_run_only_when_the_run_changes_status() -> None:
    running = job("running", epoch=1)
    assert decide_with_task(running, [], running, task("in_progress"), Flags()) == {"job-00-j": []}
    events: list[JobEvent] = [JobSucceeded(epoch=1)]
    after = msgspec.structs.replace(running, status="succeeded")
    decision = decide_with_task(running, events, after, task("in_progress"), Flags())
    assert list(decision) == ["job-00-j", "task-00-a"]
    assert [e.TYPE for e in decision["task-00-a"]] == ["task.transitioned", "task.run_finished"]


def test_a_quick_run_is_promoted_once_with_its_task() -> None:
    quick = msgspec.structs.replace(
        job("succeeded"), source="quick_action", task_id=None, prompt="Tidy the README\nplease"
    )
    decision = decide_promote_quick_run(quick, "task-00-n")
    assert list(decision) == ["job-00-j", "task-00-n"]
    assert decision["job-00-j"] == [JobPromoted(task_id="task-00-n")]
    [created] = decision["task-00-n"]
    assert isinstance(created, TaskCreated)
    assert (created.title, created.source) == ("Tidy the README", "promoted_quick_action")
    assert created.spec == {"type": "task", "payload": {}}
    promoted = msgspec.structs.replace(quick, promoted_task_id="task-00-n")
    assert decide_promote_quick_run(promoted, "task-00-m") == {}
    with pytest.raises(InvalidTransition):
        decide_promote_quick_run(job("succeeded"), "task-00-n")


def test_the_task_follows_its_runs_steps_in_the_same_decision() -> None:
    running = job("running", epoch=1, worker_id="w1")
    events: list[JobEvent] = [
        JobStepFinished(epoch=1, index=1, step_id="plan", outcome="succeeded"),
        JobStepStarted(epoch=1, index=2, step_id="implement", title="Implement"),
    ]
    assert task_follows(running, events, running)
    decision = decide_with_task(running, events, running, task("in_progress"), Flags())
    assert decision["task-00-a"] == [
        TaskStepCompleted(job_id="job-00-j", step_id="plan", outcome="succeeded"),
        TaskStepStarted(job_id="job-00-j", step_id="implement", title="Implement", agent_id="w1"),
    ]
    card = task("in_progress", current_agent_id="w1")
    followed = events_for(decision, "task-00-a", TaskEvent)
    for version, e in enumerate(followed, start=card.version + 1):
        card = evolve_task(card, e, card.id, version, "t")
    assert card.current_step == "Implement" and card.current_agent_id == "w1"


def test_steps_of_a_run_that_is_not_the_tasks_active_one_are_not_followed() -> None:
    running = job("running", epoch=1)
    events: list[JobEvent] = [JobStepStarted(epoch=1, index=1, step_id="plan")]
    other = task("in_progress", active_job_id="job-00-other")
    assert decide_with_task(running, events, running, other, Flags()) == {"job-00-j": [*events]}
    alone = msgspec.structs.replace(running, task_id=None)
    assert not task_follows(alone, events, alone)
    assert not task_follows(running, [], running)


def test_a_failed_run_names_the_step_it_stopped_in_and_a_success_clears_it() -> None:
    failing = job("running", epoch=1, steps=[
        {"index": 1, "step_id": "plan", "title": "Plan", "status": "succeeded"},
        {"index": 2, "step_id": "verify", "title": None, "status": "failed"},
    ])  # fmt: skip
    failed = msgspec.structs.replace(failing, status="failed", outcome={"error": {"code": "x"}})
    events: list[JobEvent] = [JobFailed(epoch=1, error={"code": "x"}, retryable=False)]
    decision = decide_with_task(failing, events, failed, task("in_progress"), Flags())
    finished = decision["task-00-a"][-1]
    assert isinstance(finished, TaskRunFinished) and finished.step == "verify"
    done = msgspec.structs.replace(failing, status="succeeded")
    decision = decide_with_task(failing, [JobSucceeded(epoch=1)], done, task("in_progress"),
                                Flags())  # fmt: skip
    finished = decision["task-00-a"][-1]
    assert isinstance(finished, TaskRunFinished) and finished.step is None
