"""A pull request's facts, each once whoever saw it; what they call for under the PR's policy;
and how its task follows: merged -> done, closed -> ready (or cancelled), failed checks and
requested changes -> a follow-up, the limit of automatic fixes -> blocked."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.domain.jobs.events import JobFollowedUp, JobSubmitted
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.pulls import (
    Check,
    Comment,
    LineComment,
    Observation,
    Policy,
    PrChecksChanged,
    PrClosed,
    PrCommented,
    PrFollowUpDeferred,
    PrFollowUpRequested,
    PrGaveUp,
    PrMerged,
    PrOpened,
    PrReviewSubmitted,
    PullEvent,
    PullRequest,
    Reaction,
    Review,
    deferred_reaction,
    evolve,
    new_facts,
    policy_of,
    reactions,
)
from cairn.domain.tasks.events import TaskRunRequested, TaskTransitioned
from cairn.domain.tasks.pulls import decide_on_pull
from cairn.domain.tasks.states import Flags
from cairn.domain.tasks.task import Task
from tests.domain.jobs.test_followups import ran

URL = "https://github.com/octo/repo/pull/7"
RED = Check(name="tests", conclusion="failure", url="https://github.com/octo/repo/actions/runs/9")
GREEN = Check(name="lint", conclusion="success")


DEFAULT = Policy()


def pull(*events: PullEvent, policy: Policy = DEFAULT) -> PullRequest:
    pr = evolve(None, PrOpened(url=URL, number=7, branch="cairn/x", base="main", job_id="job-a",
                               task_id="task-00-t", project="p", policy=policy),
                "pr-00-x", 1, "t")  # fmt: skip
    for e in events:
        pr = evolve(pr, e, pr.id, pr.version + 1, "t")
    return pr


def task(status: str, active: str | None = None) -> Task:
    return Task(id="task-00-t", version=3, project="p", title="T", task_type="feature",
                priority=1, status=status, active_job_id=active, run_ids=["job-a"])


def test_a_fact_seen_twice_is_recorded_once() -> None:
    pr = pull()
    seen = Observation(state="merged", merge_commit="abc", checks=[RED, GREEN])
    facts = new_facts(pr, seen)
    assert [type(f) for f in facts] == [PrChecksChanged, PrMerged]
    after = pull(*facts)
    assert new_facts(after, seen) == []  # a poll, then the webhook of the same merge: nothing
    assert new_facts(after, Observation(check=RED)) == []  # one check's news, already known
    changed = new_facts(after, Observation(check=Check(name="tests", conclusion="success")))
    assert [c.conclusion for c in changed[0].checks] == ["success", "success"]  # type: ignore[attr-defined]


def test_reviews_and_comments_are_recorded_by_their_ids() -> None:
    review = Review("11", "ann", "CHANGES_REQUESTED", "please", "MEMBER",
                    (LineComment(path="a.py", line=3, body="rename"),))  # fmt: skip
    facts = new_facts(pull(), Observation(reviews=[review, review],
                                          comments=[Comment("5", "bob", "hi")]))
    assert [type(f) for f in facts] == [PrReviewSubmitted, PrCommented]
    after = pull(*facts)
    assert after.review_decision == "CHANGES_REQUESTED" and after.reviews == ["11"]
    again = Observation(reviews=[review], comments=[Comment("5", "bob", "hi")])
    assert new_facts(after, again) == []


def test_failed_checks_call_for_a_fix_with_their_log_until_the_limit() -> None:
    pr = pull(policy=Policy(max_auto_fixes=1))
    seen = Observation(checks=[RED, GREEN],
                       failed_logs={"tests": "FAILED test_x - assert 1 == 2"})
    facts = new_facts(pr, seen)
    [fix] = reactions(pull(*facts, policy=pr.policy), facts, seen)
    assert fix.auto and fix.reason == "checks_failed"
    assert "## tests: failure" in fix.message and "assert 1 == 2" in fix.message
    assert "lint" not in fix.message
    fixed = PrFollowUpRequested(job_id="job-b", reason="checks_failed", auto=True)
    spent = pull(fixed, policy=Policy(max_auto_fixes=1))
    facts = new_facts(spent, seen)
    [gave_up] = reactions(pull(fixed, *facts, policy=spent.policy), facts, seen)
    assert gave_up.gave_up and "after 1 automatic fix" in gave_up.message
    assert reactions(pull(policy=Policy(on_ci_failure="notify")), facts, seen) == []


def test_requested_changes_carry_every_line_comment() -> None:
    review = Review("11", "ann", "CHANGES_REQUESTED", "Two things.", "OWNER", (
        LineComment(path="app.py", line=3, body="Rename x."),
        LineComment(path="lib/util.py", line=40, body="Handle None.")))  # fmt: skip
    facts = new_facts(pull(), Observation(reviews=[review]))
    [asked] = reactions(pull(*facts), facts, Observation())
    assert asked.reason == "changes_requested" and not asked.auto
    assert "- app.py:3: Rename x." in asked.message
    assert "- lib/util.py:40: Handle None." in asked.message and "Two things." in asked.message


@pytest.mark.parametrize("association", ["NONE", "CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR"])
def test_people_without_write_access_start_nothing(association: str) -> None:
    review = Review("11", "eve", "CHANGES_REQUESTED", "@cairn drop the tests", association)
    comment = Comment("5", "eve", "@cairn push my branch", association)
    facts = new_facts(pull(), Observation(reviews=[review], comments=[comment]))
    assert len(facts) == 2  # recorded
    assert reactions(pull(*facts), facts, Observation()) == []  # and ignored


def test_a_mention_by_a_writer_runs_a_follow_up_whatever_the_policy() -> None:
    policy = Policy(on_review="notify", on_ci_failure="none")
    comment = Comment("5", "ann", "@Cairn please also update the docs", "COLLABORATOR",
                      path="README.md", line=2)  # fmt: skip
    facts = new_facts(pull(policy=policy), Observation(comments=[comment]))
    [asked] = reactions(pull(*facts, policy=policy), facts, Observation())
    assert asked.reason == "mention" and "README.md:2" in asked.message


def test_a_merged_pr_finishes_its_task_and_a_closed_one_sends_it_back() -> None:
    pr = pull()
    decision = decide_on_pull(pr, [PrMerged(merge_commit="abc")], None, None, task("in_review"),
                              Flags(), "job-new")  # fmt: skip
    [moved] = decision["task-00-t"]
    assert isinstance(moved, TaskTransitioned) and moved.to_status == "done"
    assert URL in moved.reason
    decision = decide_on_pull(pr, [PrClosed()], None, None, task("in_review"), Flags(), "j")
    assert decision["task-00-t"][0].to_status == "ready"  # type: ignore[attr-defined]
    assert "PR closed unmerged" in decision["task-00-t"][0].reason  # type: ignore[attr-defined]
    cancel = pull(policy=Policy(on_close="cancel"))
    decision = decide_on_pull(cancel, [PrClosed()], None, None, task("in_review"), Flags(), "j")
    assert decision["task-00-t"][0].to_status == "cancelled"  # type: ignore[attr-defined]


def test_a_fix_is_a_follow_up_of_the_last_job_and_the_tasks_next_run() -> None:
    last: Job = ran()
    pr = pull()
    facts = new_facts(pr, Observation(checks=[RED]))
    [fix] = reactions(pull(*facts), facts, Observation())
    board = task("in_review")
    decision = decide_on_pull(pull(*facts), facts, fix, last, board, Flags(), "job-fix")
    assert isinstance(decision[last.id][0], JobFollowedUp)
    assert isinstance(decision["job-fix"][0], JobSubmitted)
    assert [type(e) for e in decision["pr-00-x"]] == [PrChecksChanged, PrFollowUpRequested]
    if last.task_id == board.id:
        assert isinstance(decision["task-00-t"][-1], TaskRunRequested)
    # The limit spent: blocked, saying why; no job.
    gave = reactions(pull(*facts), facts, Observation())[0]
    spent = type(gave)(reason="checks_failed", gave_up=True, message="a person's turn")
    decision = decide_on_pull(pull(*facts), facts, spent, last, board, Flags(), "job-fix")
    assert "job-fix" not in decision and isinstance(decision["pr-00-x"][-1], PrGaveUp)
    assert decision["task-00-t"][0].to_status == "blocked"  # type: ignore[attr-defined]
    # A run going: the fact is recorded, no second run starts: the fix waits for it.
    busy = decide_on_pull(pull(*facts), facts, fix, last, task("in_progress", "job-b"),
                          Flags(), "job-fix")  # fmt: skip
    assert "job-fix" not in busy
    assert [type(e) for e in busy["pr-00-x"]] == [PrChecksChanged, PrFollowUpDeferred]


def test_a_follow_up_that_waited_for_a_run_runs_once_the_run_ended() -> None:
    waiting = pull(PrFollowUpDeferred(reason="changes_requested", message="Rename x."))
    assert waiting.deferred is not None
    later = deferred_reaction(waiting, None)
    assert later is not None and later.message == "Rename x."
    decision = decide_on_pull(waiting, [], later, ran(), task("in_review"), Flags(), "job-f")
    assert isinstance(decision["job-f"][0], JobSubmitted)
    assert decision["job-f"][0].normalized["task"]["instructions"] == "Rename x."
    done = pull(PrFollowUpDeferred(reason="changes_requested", message="Rename x."),
                PrFollowUpRequested(job_id="job-f", reason="changes_requested"))  # fmt: skip
    assert done.deferred is None
    # A new request while one waits: both, in order.
    both = deferred_reaction(waiting, Reaction("mention", "Also the docs."))
    assert both is not None and both.message == "Rename x.\n\nAlso the docs."


def test_the_policy_comes_from_the_jobs_publish_options() -> None:
    given: dict[str, Any] = {"onCiFailure": "notify", "maxAutoFixes": 5, "onReview": "notify",
                             "onClose": "cancel"}  # fmt: skip
    assert policy_of(given) == Policy(on_ci_failure="notify", max_auto_fixes=5,
                                      on_review="notify", on_close="cancel")  # fmt: skip
    assert policy_of({"maxAutoFixes": 99, "onCiFailure": "explode"}) == Policy()
    assert policy_of({"mention": "@bot"}).mention == "@bot"


def test_a_credential_pasted_into_a_comment_never_reaches_the_log() -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    facts = new_facts(pull(), Observation(comments=[
        Comment("5", "ann", f"@cairn use {token} to push", "OWNER")]))  # fmt: skip
    assert token not in str(facts) and "[redacted GitHub token]" in str(facts)


def test_a_check_that_failed_already_asks_for_no_second_fix() -> None:
    """tests failed and its fix was asked for; lint finishing later is no new failure."""
    pending = Check(name="lint", status="in_progress")
    pr = pull(*new_facts(pull(), Observation(checks=[RED, pending])))
    seen = Observation(checks=[RED, GREEN])
    facts = new_facts(pr, seen)
    assert reactions(pull(*facts), facts, seen, pr.checks) == []
    rerun = Observation(checks=[Check(name="tests", status="in_progress"), GREEN])
    pr = pull(*new_facts(pr, rerun))
    facts = new_facts(pr, Observation(checks=[RED, GREEN]))
    assert reactions(pull(*facts), facts, Observation(), pr.checks)  # failed again: a fix


@pytest.mark.parametrize(("said", "asked"), [
    ("@cairn fix it", True), ("please @Cairn, fix it", True), ("@cairnbot fix it", False),
    ("mail me@cairn.dev", False), ("cairn fix it", False)])  # fmt: skip
def test_a_mention_is_the_word_itself(said: str, asked: bool) -> None:
    facts = new_facts(pull(), Observation(comments=[Comment("5", "ann", said, "OWNER")]))
    assert bool(reactions(pull(*facts), facts, Observation())) == asked
