"""Follow-ups: a new job on top of a finished one, linked both ways, on the branch the first
pushed, resuming its agent's session; refused for what has nothing to continue."""

from __future__ import annotations

import pytest

from cairn.domain.errors import InvalidTransition, ValidationFailed
from cairn.domain.jobs.attempts import decide_claim
from cairn.domain.jobs.events import (
    JobBranchResolved,
    JobFollowedUp,
    JobPublished,
    JobStepFinished,
    JobSubmitted,
    JobSucceeded,
)
from cairn.domain.jobs.followups import check_message, decide_follow_up, last_session
from cairn.domain.jobs.job import Job, SubmitOptions, decide_submit, evolve
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.jobs.registry import normalize_job
from tests.domain.jobs.test_controls import TS, apply

PAYLOAD = {"repository": "octo/repo", "targetRuntime": "claude",
           "task": {"instructions": "Add hello.txt", "skill": {"id": "fix-bug"},
                    "steps": [{"instructions": "a"}, {"instructions": "b"}],
                    "publish": {"mode": "pr"}}}  # fmt: skip


def ran(*, published: bool = True, payload: dict | None = None) -> Job:  # type: ignore[type-arg]
    normalized = normalize_job("task", payload or PAYLOAD, ContractSettings())
    job = apply(None, decide_submit(normalized, SubmitOptions()))
    job = apply(job, decide_claim(job, "w1", 1))
    events = [
        JobBranchResolved(epoch=1, repository="octo/repo", default="main", starting="main",
                          new="cairn/x", working="cairn/x"),
        JobStepFinished(epoch=1, index=1, step_id="s1", outcome="succeeded", session_id="old"),
        JobStepFinished(epoch=1, index=2, step_id="s2", outcome="succeeded", session_id="sess-1"),
    ]  # fmt: skip
    if published:
        events.append(JobPublished(epoch=1, outcome="PUBLISHED_PR", branch="cairn/x",
                                   pr_url="https://github.com/octo/repo/pull/7"))  # fmt: skip
    return apply(job, [*events, JobSucceeded(epoch=1)])


def test_a_follow_up_goes_on_from_the_pushed_branch_resuming_the_last_session() -> None:
    job = ran()
    decision = decide_follow_up(job, "job-00-new", "Also add bye.txt")
    assert decision[job.id] == [JobFollowedUp(new_job_id="job-00-new", message="Also add bye.txt")]
    [submitted] = decision["job-00-new"]
    assert isinstance(submitted, JobSubmitted)
    assert (submitted.follows, submitted.resume_session) == (job.id, "sess-1")
    task = submitted.normalized["task"]
    assert task["instructions"] == "Also add bye.txt"
    assert task["steps"] == [] and task["skill"]["id"] == "auto"
    assert task["git"]["startingBranch"] == "cairn/x" and task["git"]["newBranch"] is None
    assert task["publish"]["prBaseBranch"] == "main"  # the pull request keeps its base
    assert submitted.normalized["repository"] == job.normalized["repository"]
    after = apply(job, [JobFollowedUp(new_job_id="job-00-new", message="Also add bye.txt")])
    assert after.followed_by == [{"job_id": "job-00-new", "message": "Also add bye.txt"}]
    new = evolve(None, submitted, "job-00-new", 1, TS)
    assert new.follows == job.id and new.resume_session == "sess-1"


def test_a_run_that_pushed_nothing_is_followed_up_where_it_started() -> None:
    job = ran(published=False)
    [submitted] = decide_follow_up(job, "job-00-new", "again")["job-00-new"]
    assert isinstance(submitted, JobSubmitted)
    assert submitted.normalized["task"]["git"].get("startingBranch") is None


def test_what_has_nothing_to_continue_is_refused() -> None:
    normalized = normalize_job("task", PAYLOAD, ContractSettings())
    queued = apply(None, decide_submit(normalized, SubmitOptions()))
    with pytest.raises(InvalidTransition, match="send a message"):
        decide_follow_up(queued, "job-00-new", "more")
    shell = ran(payload={**PAYLOAD, "targetRuntime": "shell"})
    with pytest.raises(InvalidTransition, match="no agent session"):
        decide_follow_up(shell, "job-00-new", "more")
    noop = apply(None, decide_submit(normalize_job("noop", {}, ContractSettings()),
                                     SubmitOptions()))  # fmt: skip
    with pytest.raises(InvalidTransition, match="only a task job"):
        decide_follow_up(noop, "job-00-new", "more")


@pytest.mark.parametrize("message", ["", "   ", None, 3, "x" * 20_001])
def test_a_message_must_say_something(message: object) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_message(message)
    assert refused.value.errors[0]["path"] == "body.message"


def test_the_last_session_is_the_last_step_that_recorded_one() -> None:
    job = ran()
    assert last_session(job) == "sess-1"
