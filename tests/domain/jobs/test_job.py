"""The Job decider: retries with backoff, dead letters, cancels, fencing, leases."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.errors import (
    CorruptStream,
    InvalidTransition,
    StaleLease,
    ValidationFailed,
    VersionConflict,
)
from cairn.domain.jobs.attempts import RetryPolicy, decide_claim, decide_fail, decide_lease_expired
from cairn.domain.jobs.events import JobEvent, JobResubmitted, JobSubmitted
from cairn.domain.jobs.job import (
    Job,
    JobStatus,
    SubmitOptions,
    decide_cancel,
    decide_resubmit,
    decide_submit,
    evolve,
)
from cairn.domain.jobs.kinds import ContractSettings, NormalizedJob
from cairn.domain.jobs.registry import normalize_job

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy()


def apply(job: Job | None, events: list[JobEvent]) -> Job:
    for e in events:
        job = evolve(job, e, "job-00-x", (job.version if job else 0) + 1, "2026-11-21T12:00:00Z")
    assert job is not None
    return job


def queued(max_attempts: int = 3) -> Job:
    normalized = normalize_job("noop", {}, ContractSettings())
    return apply(None, decide_submit(normalized, SubmitOptions(max_attempts=max_attempts)))


def claimed(job: Job) -> Job:
    return apply(job, decide_claim(job, "w1", job.epoch + 1))


@pytest.mark.parametrize(
    ("attempt", "delay"), [(1, 15), (2, 30), (3, 60), (6, 480), (7, 600), (12, 600)]
)
def test_backoff_doubles_and_caps(attempt: int, delay: float) -> None:
    assert POLICY.delay(attempt) == delay


def test_retryable_failures_requeue_then_dead_letter() -> None:
    job = queued(max_attempts=2)
    job = claimed(job)
    job = apply(job, decide_fail(job, job.epoch, {"code": "x"}, NOW, POLICY))
    assert job.status == JobStatus.QUEUED and job.not_before == "2026-11-21T12:00:15.000Z"
    job = claimed(job)
    assert job.attempt == 2 and job.epoch == 2
    job = apply(job, decide_fail(job, job.epoch, {"code": "x"}, NOW, POLICY))
    assert job.status == JobStatus.DEAD_LETTER
    assert job.outcome and job.outcome["reason"]["code"] == "attempts_exhausted"


def test_not_retryable_failure_is_final() -> None:
    job = claimed(queued())
    job = apply(job, decide_fail(job, job.epoch, {"code": "x"}, NOW, POLICY, retryable=False))
    assert job.status == JobStatus.FAILED


def test_stale_epoch_is_fenced() -> None:
    job = claimed(queued())
    with pytest.raises(StaleLease):
        decide_fail(job, job.epoch - 1, {"code": "x"}, NOW, POLICY)
    expired = apply(job, decide_lease_expired(job, NOW, POLICY))
    assert expired.status == JobStatus.QUEUED
    with pytest.raises(StaleLease):
        decide_fail(expired, job.epoch, {"code": "x"}, NOW, POLICY)


def test_cancel_queued_now_running_on_request_and_repeat_is_noop() -> None:
    assert apply(queued(), decide_cancel(queued())).status == JobStatus.CANCELLED
    running = claimed(queued())
    requested = apply(running, decide_cancel(running))
    assert requested.status == JobStatus.CANCEL_REQUESTED
    assert decide_cancel(requested) == []
    expired = apply(requested, decide_lease_expired(requested, NOW, POLICY))
    assert expired.status == JobStatus.CANCELLED  # a pending cancel wins over a retry


def test_resubmit_only_when_finished_badly() -> None:
    with pytest.raises(InvalidTransition):
        decide_resubmit(queued(), "job-00-y")
    cancelled = apply(queued(), decide_cancel(queued()))
    assert decide_resubmit(cancelled, "job-00-y")


def test_a_board_run_is_retried_from_its_task_not_resubmitted() -> None:
    # A resubmitted board run would be a second run its task does not know.
    run = msgspec.structs.replace(queued(), source="board", task_id="task-00-t")
    cancelled = apply(run, decide_cancel(run))
    with pytest.raises(InvalidTransition) as refused:
        decide_resubmit(cancelled, "job-00-y")
    assert "/api/v2/tasks/task-00-t/retry" in refused.value.message


def test_a_job_without_capabilities_is_refused() -> None:
    bare = NormalizedJob("task", "task", {}, {}, [])
    with pytest.raises(ValidationFailed):
        decide_submit(bare, SubmitOptions())


@given(st.lists(st.sampled_from(["claim", "fail", "fail_final", "expire", "cancel"]), max_size=30))
def test_attempts_never_exceed_max_and_terminal_is_final(steps: list[str]) -> None:
    job = queued(max_attempts=3)
    for step in steps:
        try:
            if step == "claim":
                events = decide_claim(job, "w", job.epoch + 1)
            elif step in {"fail", "fail_final"}:
                events = decide_fail(
                    job, job.epoch, {"c": 1}, NOW, POLICY, retryable=step == "fail"
                )
            elif step == "expire":
                events = decide_lease_expired(job, NOW, POLICY)
            else:
                events = decide_cancel(job)
        except (InvalidTransition, StaleLease):
            continue
        before = job.status
        job = apply(job, events)
        assert job.attempt <= job.max_attempts
        if before in {"succeeded", "failed", "cancelled", "dead_letter"}:
            assert job.status == before


def test_apply_events_folds_several_events_in_order() -> None:
    from cairn.domain.jobs.job import apply_events

    job = claimed(queued(max_attempts=1))
    events = decide_fail(job, job.epoch, {"code": "x"}, NOW, POLICY)  # failed + dead-lettered
    assert len(events) == 2
    after = apply_events(job, events, "2026-11-21T12:00:01Z")
    assert after.version == job.version + 2 and after.status == JobStatus.DEAD_LETTER


@given(st.integers(-3, 12).filter(lambda v: v != 2))
def test_an_event_out_of_version_order_is_a_corrupt_stream_not_a_conflict(version: int) -> None:
    job = queued()
    assert job.version == 1
    with pytest.raises(CorruptStream) as caught:
        evolve(job, decide_cancel(job)[0], job.id, version, "2026-11-21T12:00:00Z")
    assert not isinstance(caught.value, VersionConflict)  # a 409 says "reload and retry"
    assert (caught.value.status, caught.value.code) == (500, "corrupt_stream")
    assert caught.value.details == {"aggregate_id": job.id, "version": version,
                                    "expected_version": 2}  # fmt: skip
    with pytest.raises(CorruptStream, match=r"not job\.submitted"):
        evolve(None, decide_cancel(job)[0], job.id, 1, "2026-11-21T12:00:00Z")


def test_a_resubmission_links_the_old_job_and_submits_the_new_in_one_decision() -> None:
    cancelled = apply(queued(), decide_cancel(queued()))
    decision = decide_resubmit(cancelled, "job-00-y")
    assert list(decision) == ["job-00-x", "job-00-y"]  # the subject first
    [linked], [submitted] = decision["job-00-x"], decision["job-00-y"]
    assert linked == JobResubmitted(new_job_id="job-00-y")
    assert isinstance(submitted, JobSubmitted) and submitted.resubmitted_from == "job-00-x"
    relinked = apply(cancelled, [linked])
    assert decide_resubmit(relinked, "job-00-z") == {}
