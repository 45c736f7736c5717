"""A job's execution detail (branches, steps, publish, artifacts) and a person's controls
(pause, resume, operator messages): the deciders and the evolution, by example and at random."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.domain.errors import InvalidTransition, StaleLease, ValidationFailed
from cairn.domain.jobs.attempts import (
    RetryPolicy,
    check_lease,
    decide_claim,
    decide_fail,
    decide_lease_expired,
)
from cairn.domain.jobs.controls import (
    MAX_MESSAGE,
    MAX_MESSAGES,
    decide_operator_message,
    decide_pause,
    decide_resume,
)
from cairn.domain.jobs.events import (
    JobArtifactAdded,
    JobBranchResolved,
    JobEvent,
    JobOperatorMessage,
    JobPaused,
    JobPublished,
    JobResumed,
    JobStepFinished,
    JobStepStarted,
    JobSucceeded,
    PublishOutcome,
    StepOutcome,
    job_event_from,
)
from cairn.domain.jobs.job import (
    TERMINAL,
    Job,
    JobStatus,
    SubmitOptions,
    decide_cancel,
    decide_submit,
    evolve,
)
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.jobs.registry import normalize_job

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TS = "2026-11-21T12:00:00Z"


def apply(job: Job | None, events: list[JobEvent]) -> Job:
    for e in events:
        job = evolve(job, e, "job-00-x", (job.version if job else 0) + 1, TS)
    assert job is not None
    return job


def queued() -> Job:
    normalized = normalize_job("noop", {}, ContractSettings())
    return apply(None, decide_submit(normalized, SubmitOptions()))


def running() -> Job:
    job = queued()
    return apply(job, decide_claim(job, "w1", job.epoch + 1))


def finished() -> Job:
    job = running()
    return apply(job, [JobSucceeded(epoch=job.epoch)])


# ---- pause and resume ------------------------------------------------------------------------


@pytest.mark.parametrize("make", [queued, running])
def test_a_queued_or_running_job_pauses_once_and_resumes_once(make: object) -> None:
    job = make()  # type: ignore[operator]
    [paused] = decide_pause(job, "look at the plan first")
    assert paused == JobPaused(reason="look at the plan first")
    job = apply(job, [paused])
    assert job.paused and job.pause_reason == "look at the plan first"
    assert decide_pause(job, "again") == []  # a repeat is a no-op
    [resumed] = decide_resume(job)
    assert resumed == JobResumed()
    job = apply(job, [resumed])
    assert not job.paused and job.pause_reason is None
    assert decide_resume(job) == []


def test_pausing_a_finished_job_is_refused_naming_what_is_allowed() -> None:
    with pytest.raises(InvalidTransition) as refused:
        decide_pause(finished())
    assert "succeeded" in refused.value.message
    assert refused.value.details["allowed_statuses"] == ["queued", "running"]
    with pytest.raises(InvalidTransition) as refused:
        decide_resume(finished())
    assert "nothing to resume" in refused.value.message


def test_a_job_whose_cancel_was_requested_is_not_paused_but_may_be_resumed() -> None:
    job = apply(running(), [JobPaused()])
    job = apply(job, decide_cancel(job))
    assert job.status == JobStatus.CANCEL_REQUESTED
    with pytest.raises(InvalidTransition, match="a cancel was requested"):
        decide_pause(job)
    assert decide_resume(job) == [JobResumed()]


def test_a_paused_job_that_finishes_is_no_longer_paused() -> None:
    job = apply(running(), [JobPaused(reason="wait")])
    done = apply(job, [JobSucceeded(epoch=job.epoch)])
    assert not done.paused and done.pause_reason is None
    cancelled = apply(queued(), [JobPaused()])
    cancelled = apply(cancelled, decide_cancel(cancelled))
    assert cancelled.status == JobStatus.CANCELLED and not cancelled.paused


# ---- operator messages -----------------------------------------------------------------------


def test_an_operator_message_is_stripped_and_kept_with_its_version_and_time() -> None:
    job = running()
    [message] = decide_operator_message(job, "  use the staging database  \n")
    assert message == JobOperatorMessage(text="use the staging database")
    after = apply(job, [message])
    assert after.operator_messages == [
        {"id": job.version + 1, "text": "use the staging database", "ts": TS}
    ]


@pytest.mark.parametrize("text", ["", "   \n\t", "x" * (MAX_MESSAGE + 1)])
def test_an_empty_or_long_message_is_refused_with_its_path(text: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        decide_operator_message(running(), text)
    assert [e["path"] for e in refused.value.errors] == ["text"]


def test_a_message_of_exactly_the_limit_is_taken() -> None:
    assert decide_operator_message(queued(), " " + "x" * MAX_MESSAGE + " ")


def test_messages_go_only_to_a_queued_or_running_job() -> None:
    with pytest.raises(InvalidTransition) as refused:
        decide_operator_message(finished(), "hello")
    assert refused.value.details["allowed_statuses"] == ["queued", "running"]
    requested = apply(running(), decide_cancel(running()))
    with pytest.raises(InvalidTransition):
        decide_operator_message(requested, "hello")


def test_a_job_takes_a_bounded_number_of_messages() -> None:
    job = running()
    job = apply(job, [JobOperatorMessage(text=f"m{i}") for i in range(MAX_MESSAGES)])
    with pytest.raises(InvalidTransition, match=str(MAX_MESSAGES)):
        decide_operator_message(job, "one more")


# ---- the execution detail --------------------------------------------------------------------


def test_steps_open_and_close_by_index_and_a_new_attempt_starts_afresh() -> None:
    job = running()
    epoch = job.epoch
    job = apply(job, [
        JobStepStarted(epoch=epoch, index=1, step_id="plan", title="Plan"),
        JobStepFinished(epoch=epoch, index=1, step_id="plan", outcome="succeeded",
                        exit_status=0, duration_ms=1200, files=2, insertions=10, deletions=3,
                        usage={"input_tokens": 5}),
        JobStepStarted(epoch=epoch, index=2, step_id="implement"),
    ])  # fmt: skip
    first, second = job.steps
    assert first["status"] == "succeeded" and first["finished_at"] == TS
    assert (first["files"], first["insertions"], first["deletions"]) == (2, 10, 3)
    assert first["usage"] == {"input_tokens": 5} and first["title"] == "Plan"
    assert second["status"] == "running" and second["title"] is None
    job = apply(job, decide_fail(job, epoch, {"code": "x"}, NOW, RetryPolicy()))
    assert job.status == JobStatus.QUEUED and len(job.steps) == 2  # the last attempt's, shown
    job = apply(job, decide_claim(job, "w2", epoch + 1))
    assert job.steps == []


def test_a_step_that_finished_without_being_seen_to_start_is_recorded() -> None:
    job = apply(running(), [JobStepFinished(epoch=1, index=3, step_id="verify",
                                            outcome="timed_out", exit_status=None)])  # fmt: skip
    [step] = job.steps
    assert (step["index"], step["step_id"], step["status"]) == (3, "verify", "timed_out")
    assert step["started_at"] is None


def test_branches_publish_and_artifacts_name_their_attempt() -> None:
    job = running()
    job = apply(job, [
        JobBranchResolved(epoch=1, repository="acme/app", default="main", starting="main",
                          new="cairn/20261121/abcdefgh", working="cairn/20261121/abcdefgh"),
        JobArtifactAdded(epoch=1, name="logs/steps/step-1.log", ref="artifact",
                         path="attempt-1/logs/steps/step-1.log", size=12, sha256="ab" * 32,
                         content_type="text/plain; charset=utf-8", truncated=True),
        JobPublished(epoch=1, outcome=PublishOutcome.PUBLISHED_PR, branch="cairn/x",
                     pr_url="https://github.com/acme/app/pull/7", commit="c0ffee"),
    ])  # fmt: skip
    assert job.branches is not None and job.branches["working"] == "cairn/20261121/abcdefgh"
    assert job.branches["attempt"] == 1 and "epoch" not in job.branches
    [artifact] = job.artifacts
    assert artifact["size"] == 12 and artifact["truncated"] and artifact["attempt"] == 1
    assert job.publish == {"outcome": "PUBLISHED_PR", "branch": "cairn/x",
                           "pr_url": "https://github.com/acme/app/pull/7", "commit": "c0ffee",
                           "detail": {}, "attempt": 1}  # fmt: skip


def test_an_artifact_written_before_size_and_digest_still_reads() -> None:
    old = job_event_from("job.artifact_added", 1, {"epoch": 1, "name": "execute.log",
                                                   "ref": "file:///x"})  # fmt: skip
    assert isinstance(old, JobArtifactAdded)
    assert (old.size, old.sha256, old.path, old.content_type, old.truncated) == (
        None, None, None, None, False)  # fmt: skip


@pytest.mark.parametrize("kind", [JobStepStarted, JobStepFinished, JobPublished, JobPaused])
def test_new_events_round_trip_through_their_envelope_data(kind: type[JobEvent]) -> None:
    import msgspec

    samples: dict[type[JobEvent], JobEvent] = {
        JobStepStarted: JobStepStarted(epoch=2, index=1, step_id="s", title="T"),
        JobStepFinished: JobStepFinished(epoch=2, index=1, step_id="s", outcome="failed",
                                         error={"code": "exit_status"}),
        JobPublished: JobPublished(epoch=2, outcome="NO_CHANGES"),
        JobPaused: JobPaused(reason="why"),
    }  # fmt: skip
    event = samples[kind]
    assert job_event_from(kind.TYPE, 1, msgspec.to_builtins(event)) == event


def test_the_outcome_vocabularies() -> None:
    assert [o.value for o in StepOutcome] == ["succeeded", "failed", "cancelled", "timed_out"]
    assert [o.value for o in PublishOutcome] == [
        "PUBLISHED_PR", "PUBLISHED_BRANCH", "NO_CHANGES", "PUBLISH_DISABLED", "FAILED", "CANCELLED"
    ]  # fmt: skip


# ---- at random -------------------------------------------------------------------------------

ACTIONS = ["claim", "fail", "expire", "cancel", "succeed", "pause", "resume", "message",
           "blank_message", "step_start", "step_finish", "publish"]  # fmt: skip


def turn(job: Job, action: str) -> list[JobEvent]:
    """One turn as its decider (or, for a worker's report, the worker under its lease) makes it."""
    if action == "claim":
        return decide_claim(job, "w", job.epoch + 1)
    if action == "fail":
        return decide_fail(job, job.epoch, {"code": "x"}, NOW, RetryPolicy())
    if action == "expire":
        return decide_lease_expired(job, NOW, RetryPolicy())
    if action == "cancel":
        return decide_cancel(job)
    if action == "pause":
        return decide_pause(job, "hold")
    if action == "resume":
        return decide_resume(job)
    if action in {"message", "blank_message"}:
        return decide_operator_message(job, "note" if action == "message" else "  ")
    check_lease(job, job.epoch)
    index = len(job.steps) + (1 if action == "step_start" else 0)
    if action == "step_start":
        return [JobStepStarted(epoch=job.epoch, index=index, step_id=f"s{index}")]
    if action == "step_finish":
        return [JobStepFinished(epoch=job.epoch, index=max(index, 1), step_id="s",
                                outcome="succeeded")]  # fmt: skip
    if action == "publish":
        return [JobPublished(epoch=job.epoch, outcome="NO_CHANGES")]
    return [JobSucceeded(epoch=job.epoch)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=60))
def test_random_controls_keep_the_job_consistent(actions: list[str]) -> None:
    job = queued()
    messages = 0
    for action in actions:
        before = job
        try:
            events = turn(job, action)
        except (InvalidTransition, StaleLease, ValidationFailed):
            assert action != "message" or job.status not in {"queued", "running"}
            continue
        job = apply(job, events)
        assert job.version == before.version + len(events)
        if action == "pause":
            assert job.paused and decide_pause(job) == []
        if action == "resume":
            assert not job.paused and decide_resume(job) == []
        if action == "message":
            messages += 1
            assert job.operator_messages[-1]["id"] == job.version
        if action == "claim":
            assert job.steps == [] and job.paused == before.paused
        assert not (job.paused and job.status in TERMINAL), "a finished job holds nowhere"
        assert len(job.operator_messages) == messages
        assert [m["id"] for m in job.operator_messages] == sorted(
            {m["id"] for m in job.operator_messages}
        )
        assert all(s["status"] in {"running", "succeeded"} for s in job.steps)
