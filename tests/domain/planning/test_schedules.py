"""Cron maths and the Schedule decider: a fire time makes one job however often it is decided;
a scheduler that checks at any moments fires each cron time at most once, never one out of the
past after a gap (only the latest missed one), and a paused schedule's misses are not made up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.domain.decision import Decision, events_for
from cairn.domain.errors import InvalidTransition, ValidationFailed
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.planning.cron import cron_fault, latest_by, next_after, timezone_fault
from cairn.domain.planning.schedule_events import ScheduleEvent
from cairn.domain.planning.schedules import (
    Schedule,
    ScheduleInput,
    decide_create,
    decide_delete,
    decide_fire,
    decide_pause,
    decide_resume,
    due_fire,
    evolve,
    fire_request,
    fire_text,
    moment,
    next_fire,
)
from cairn.domain.planning.templates import builtin_version
from cairn.domain.tasks.spec import parse_model

SID = "schedule-01-" + "a" * 26
START = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
JOB = normalize_job("noop", {}, ContractSettings())


@pytest.mark.parametrize("expr", ["* * * * *", "*/5 9-17 * * 1-5", "0 3 1 * *", "@daily",
                                  "*/10 * * * * *", "0  9 * * *"])  # fmt: skip
def test_cron_expressions_cairn_runs(expr: str) -> None:
    assert cron_fault(expr) == ""


@pytest.mark.parametrize(("expr", "words"), [
    ("nonsense", "1 fields"), ("* * * *", "4 fields"), ("* * * * * * *", "7 fields"),
    ("61 * * * *", "not a cron"), ("*/0 * * * *", "not a cron"), ("@reboot", "1 fields"),
    ("0 0 31 2 *", "not a cron"), ("", "0 fields"),
])  # fmt: skip
def test_cron_nonsense_is_refused_saying_why(expr: str, words: str) -> None:
    assert words in cron_fault(expr)


def test_time_zones() -> None:
    assert timezone_fault("Europe/Berlin") == "" and timezone_fault("UTC") == ""
    assert timezone_fault("Mars/Olympus") and timezone_fault("../../etc/passwd")
    winter = next_after("0 9 * * *", "Europe/Berlin", datetime(2026, 1, 10, tzinfo=UTC))
    summer = next_after("0 9 * * *", "Europe/Berlin", datetime(2026, 7, 10, tzinfo=UTC))
    assert (winter.hour, summer.hour) == (8, 7)  # 09:00 local, CET then CEST
    assert latest_by("*/10 * * * * *", "UTC", START) == START.replace(second=30)
    assert latest_by("* * * * *", "UTC", START) == START.replace(second=0)


def apply(state: Schedule | None, decision: Decision, ts: datetime) -> Schedule | None:
    for event in events_for({k: v for k, v in decision.items() if k == SID}, SID, ScheduleEvent):
        version = state.version + 1 if state else 1
        state = evolve_at(state, event, version, ts)
    return state


def evolve_at(state: Schedule | None, event: ScheduleEvent, version: int,
              ts: datetime) -> Schedule:  # fmt: skip
    return evolve(state, event, SID, version, ts.isoformat().replace("+00:00", "Z"))


def created(cron: str = "* * * * *", **fields: Any) -> Schedule:
    given = ScheduleInput.model_validate({"name": "nightly", "cron": cron,
                                          "job": {"type": "noop"}, **fields})  # fmt: skip
    state = apply(None, decide_create(SID, given), START)
    assert state is not None
    return state


@settings(max_examples=60)
@given(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=40))
def test_a_scheduler_fires_each_cron_time_at_most_once_and_never_backfills(
    gaps: list[int],
) -> None:
    state: Schedule | None = created()
    now, fired = START, list[tuple[datetime, datetime]]()
    for gap in gaps:
        now += timedelta(seconds=gap)
        for _ in range(2):  # checked again at once (a second scheduler, after the first wrote)
            assert state is not None
            at = due_fire(state, now)
            if at is None:
                continue
            decision = decide_fire(state, at, f"job-01-{len(fired):026d}", JOB)
            if decision:
                fired.append((at, now))
            state = apply(state, decision, now)
        assert state is not None and due_fire(state, now) is None
    times = [at for at, _ in fired]
    assert times == sorted(set(times))  # once each, in order
    for at, when in fired:
        assert at == latest_by("* * * * *", "UTC", when)  # the latest missed one, not older
    expected = len({latest_by("* * * * *", "UTC", START + timedelta(seconds=sum(gaps[: i + 1])))
                    for i in range(len(gaps))} - {latest_by("* * * * *", "UTC", START)})
    assert len(fired) == expected
    assert state is not None and state.fire_count == len(fired)


def test_a_fire_time_decided_again_decides_nothing() -> None:
    state = created()
    at = START.replace(second=0) + timedelta(minutes=1)
    decision = decide_fire(state, at, "job-01-" + "b" * 26, JOB)
    assert set(decision) == {SID, "job-01-" + "b" * 26}
    after = apply(state, decision, at)
    assert after is not None and after.last_fire_time == fire_text(at)
    assert decide_fire(after, at, "job-01-" + "b" * 26, JOB) == {}
    assert decide_fire(after, at - timedelta(minutes=1), "job-01-" + "c" * 26, JOB) == {}
    assert next_fire(after) == at + timedelta(minutes=1)


def test_paused_fires_are_not_made_up_and_a_deleted_schedule_runs_no_more() -> None:
    state = created()
    paused = apply(state, decide_pause(state), START + timedelta(seconds=5))
    assert paused is not None and due_fire(paused, START + timedelta(hours=1)) is None
    later = START + timedelta(hours=1, seconds=10)
    resumed = apply(paused, decide_resume(paused), later)
    assert resumed is not None and due_fire(resumed, later + timedelta(seconds=5)) is None
    assert due_fire(resumed, later + timedelta(minutes=1)) == moment("2026-03-01T11:01:00Z")
    assert decide_resume(resumed) == {} and decide_pause(paused) == {}
    deleted = apply(resumed, decide_delete(resumed), later)
    assert deleted is not None and deleted.status == "deleted" and next_fire(deleted) is None
    assert decide_delete(deleted) == {}
    with pytest.raises(InvalidTransition):
        decide_resume(deleted)
    with pytest.raises(InvalidTransition):
        decide_fire(deleted, later, "job-01-" + "d" * 26, JOB, manual=True)


def test_a_run_now_leaves_the_cron_as_it_was_and_lands_once() -> None:
    state = created(enabled=False)
    job_id = "job-01-" + "e" * 26
    decision = decide_fire(state, START, job_id, JOB, manual=True)
    after = apply(state, decision, START)
    assert after is not None and after.last_fire_time is None and after.fire_count == 1
    assert decide_fire(after, START, job_id, JOB, manual=True) == {}


def test_a_fire_that_makes_no_job_is_recorded_with_why() -> None:
    state = created()
    at = START.replace(second=0) + timedelta(minutes=1)
    error = ValidationFailed("bad", [{"path": "inputs.x", "reason": "required"}])
    decision = decide_fire(state, at, "job-01-" + "f" * 26, None, error)
    after = apply(state, decision, at)
    assert list(decision) == [SID] and after is not None
    assert after.fires[-1]["error"]["errors"][0]["path"] == "inputs.x"
    assert due_fire(after, at + timedelta(seconds=30)) is None  # not tried every round


def test_a_template_schedule_makes_a_task_job_of_its_steps() -> None:
    job = {"payload": {"repository": "acme/app"}}
    given = parse_model(ScheduleInput, {"name": "docs", "cron": "@daily", "template": "docs",
                                        "job": job})  # fmt: skip
    template = builtin_version("docs")
    job_type, payload = fire_request(given, template)
    assert job_type == "task" and payload["repository"] == "acme/app"
    assert [s["id"] for s in payload["task"]["steps"]] == ["write_docs", "review", "commit"]


@pytest.mark.parametrize(("body", "path"), [
    ({"cron": "nonsense"}, "cron"), ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"job": {"type": "noop", "max_attempts": 0}}, "job.max_attempts"),
])  # fmt: skip
def test_bad_schedule_input_names_the_field(body: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_model(ScheduleInput, {"name": "n", "cron": "* * * * *", "job": {"type": "noop"},
                                    **body})  # fmt: skip
    assert caught.value.errors[0]["path"] == path


@pytest.mark.parametrize(("body", "path"), [
    ({}, "job"), ({"job": {"type": "noop"}, "inputs": {"a": 1}}, "inputs"),
    ({"template": "docs", "job": {"type": "noop"}}, "job.type"),
])  # fmt: skip
def test_a_schedule_needs_a_job_or_a_template(body: dict[str, Any], path: str) -> None:
    given = ScheduleInput.model_validate({"name": "n", "cron": "* * * * *", **body})
    with pytest.raises(ValidationFailed) as caught:
        decide_create(SID, given)
    assert caught.value.errors[0]["path"] == path
