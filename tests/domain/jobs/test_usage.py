"""Tokens and cost: a step's usage, the job's total over every step of every attempt, and the
sums a task or a project shows. A step that reported nothing adds nothing; a cost is never
guessed, so a total says how many steps had none."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.jobs.attempts import RetryPolicy, decide_fail
from cairn.domain.jobs.events import JobEvent, JobStepFinished, JobStepStarted
from cairn.domain.jobs.usage import add_usage, sum_usage
from tests.domain.jobs.test_job import apply, claimed, queued

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def step(usage: dict[str, object] | None, index: int = 1, epoch: int = 1) -> list[JobEvent]:
    return [JobStepStarted(epoch=epoch, index=index, step_id=f"s{index}"),
            JobStepFinished(epoch=epoch, index=index, step_id=f"s{index}", outcome="succeeded",
                            usage=usage)]  # fmt: skip


def test_a_job_sums_its_steps_usage_over_its_attempts() -> None:
    job = claimed(queued())
    job = apply(job, step({"tokens_in": 100, "tokens_cached": 20, "tokens_out": 10,
                           "cost_usd": 0.5}))  # fmt: skip
    job = apply(job, decide_fail(job, job.epoch, {"code": "x"}, NOW, RetryPolicy()))
    job = claimed(job)
    job = apply(job, step({"tokens_in": 50, "tokens_cached": 0, "tokens_out": 5,
                           "cost_usd": 0.25}, epoch=2))  # fmt: skip
    job = apply(job, step(None, index=2, epoch=2))  # a step that reported nothing
    assert job.usage == {"tokens_in": 150, "tokens_cached": 20, "tokens_out": 15,
                         "cost_usd": 0.75, "steps": 2}  # fmt: skip
    assert len(job.steps) == 2  # the steps are the last attempt's; the total is the job's


def test_a_cost_is_never_guessed_the_total_says_which_steps_had_none() -> None:
    total = add_usage(None, {"tokens_in": 10, "tokens_cached": 0, "tokens_out": 1})
    total = add_usage(total, {"tokens_in": 5, "tokens_cached": 0, "tokens_out": 1,
                              "cost_usd": 0.1})  # fmt: skip
    assert total == {"tokens_in": 15, "tokens_cached": 0, "tokens_out": 2, "cost_usd": 0.1,
                     "steps": 2, "steps_without_cost": 1}  # fmt: skip
    assert add_usage(None, {"tokens_in": 1, "tokens_out": 1})["cost_usd"] is None  # type: ignore[index]


def test_nothing_reported_sums_to_none() -> None:
    assert sum_usage([None, None]) is None
    assert add_usage(None, None) is None


usages = st.one_of(st.none(), st.fixed_dictionaries(
    {"tokens_in": st.integers(0, 10**9), "tokens_cached": st.integers(0, 10**6),
     "tokens_out": st.integers(0, 10**9)},
    optional={"cost_usd": st.floats(0, 1000, allow_nan=False)}))  # fmt: skip


@given(st.lists(usages, max_size=20))
def test_sums_are_order_free_and_count_every_token(items: list[dict[str, object] | None]) -> None:
    total = sum_usage(items)
    reported = [u for u in items if u]
    if not reported:
        assert total is None
        return
    assert total is not None
    assert total["tokens_in"] == sum(u["tokens_in"] for u in reported)  # type: ignore[misc]
    assert total["tokens_out"] == sum(u["tokens_out"] for u in reported)  # type: ignore[misc]
    assert total["steps"] == len(reported)
    again = sum_usage(list(reversed(items)))
    assert again is not None
    assert {k: v for k, v in again.items() if k != "cost_usd"} == {
        k: v for k, v in total.items() if k != "cost_usd"}
    if total["cost_usd"] is not None:
        assert abs(again["cost_usd"] - total["cost_usd"]) < 1e-6


def test_a_rate_limited_failure_waits_at_least_the_delay_the_vendor_gave() -> None:
    job = claimed(queued())
    failed = apply(job, decide_fail(job, job.epoch, {"code": "rate_limited"}, NOW,
                                    RetryPolicy(base_s=1), retry_after_s=90))  # fmt: skip
    assert failed.not_before == "2026-11-21T12:01:30.000Z"
    # A vendor delay shorter than the backoff leaves the backoff as it is.
    job = claimed(queued())
    failed = apply(job, decide_fail(job, job.epoch, {"code": "x"}, NOW, RetryPolicy(base_s=30),
                                    retry_after_s=2))  # fmt: skip
    assert failed.not_before == "2026-11-21T12:00:30.000Z"


def test_a_step_keeps_the_environment_names_and_the_agent_it_ran_with() -> None:
    job = claimed(queued())
    started = JobStepStarted(epoch=1, index=1, step_id="s1", env=["ANTHROPIC_BASE_URL"],
                             agent={"cli": "claude", "version": "2.1.197", "signin": "api key"})
    job = apply(job, [started])
    assert job.steps[0]["env"] == ["ANTHROPIC_BASE_URL"]
    assert job.steps[0]["agent"]["version"] == "2.1.197"


def test_a_step_keeps_the_sandbox_it_ran_in() -> None:
    sandbox = {"kind": "bubblewrap", "network": "on", "user": "nobody",
               "limits": {"memory_bytes": 1, "processes": 2, "open_files": 3, "disk_bytes": 4}}
    job = apply(claimed(queued()), [JobStepStarted(epoch=1, index=1, step_id="s1",
                                                   sandbox=sandbox)])  # fmt: skip
    assert job.steps[0]["sandbox"] == sandbox
    bare = apply(claimed(queued()), [JobStepStarted(epoch=1, index=1, step_id="s1")])
    assert "sandbox" not in bare.steps[0]  # an older worker's step says nothing of one
