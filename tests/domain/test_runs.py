"""How a board task follows its run."""

from __future__ import annotations

import msgspec
import pytest

from cairn.domain.job import Job
from cairn.domain.runs import decide_run_request, on_job_change, run_request
from cairn.domain.task import Task
from cairn.domain.task_states import Flags


def task(status: str, **kw: object) -> Task:
    return Task(
        id="task-00-a",
        version=3,
        project="p",
        title="Fix login",
        task_type="bug_fix",
        priority=1,
        status=status,
        active_job_id="job-00-j",
        **kw,
    )  # type: ignore[arg-type]


def job(status: str, **kw: object) -> Job:
    return Job(
        id="job-00-j",
        version=5,
        project="p",
        job_type="task",
        submitted_type="task",
        source="board",
        payload={},
        normalized={},
        required_capabilities=["codex"],
        task_id="task-00-a",
        status=status,
        attempt=2,
        max_attempts=3,
        **kw,
    )  # type: ignore[arg-type]


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
    assert decide_run_request(task("ready"), "job-00-k", Flags(), force=False) == []
    fresh = msgspec.structs.replace(
        task("ready"), active_job_id=None, acceptance_criteria=["works"]
    )
    assert decide_run_request(fresh, "job-00-k", Flags(), force=False)
    kind, payload = run_request(fresh)
    assert kind == "task" and "Fix login" in payload["task"]["instructions"]
    assert "- works" in payload["task"]["instructions"]
