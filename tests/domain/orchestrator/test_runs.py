"""Orchestrator runs as deciders: the service's line (one run at a time), approval with four
eyes and expiry, cancel in every state, a run following its jobs, and the allowed paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.decision import Decision
from cairn.domain.errors import InvalidTransition, NotAllowed, ValidationFailed
from cairn.domain.jobs.events import JobStepStarted
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.orchestrator.paths import is_allowed, outside
from cairn.domain.orchestrator.runs import (
    Run,
    RunRequest,
    check_request,
    decide_approve,
    decide_cancel,
    decide_on_job,
    decide_reject,
    decide_request,
    evolve,
    expired,
    next_in_line,
    start_next,
)
from cairn.domain.orchestrator.services import Service, ServiceEvent, parse_service
from cairn.domain.orchestrator.services import evolve as evolve_service

SETTINGS = ContractSettings(allow_local_repositories=True)
SPEC = parse_service({"name": "billing", "repository": "acme/billing",
                      "allowedPaths": ["app/**", "config/*.toml"],
                      "build": {"run": "make"}, "restart": {"run": "./restart"},
                      "verify": {"http": {"url": "http://127.0.0.1:9/health"}}}, SETTINGS)
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def service(**changes: Any) -> Service:
    return msgspec.structs.replace(Service(id="svc-00-b", version=1, name="billing", spec=SPEC),
                                   **changes)  # fmt: skip


def folded(run_id: str, decision: Decision, before: Run | None = None) -> Run:
    state = before
    for event in decision.get(run_id, []):
        state = evolve(state, event, run_id, (state.version if state else 0) + 1, "ts")  # type: ignore[arg-type]
    assert state is not None
    return state


def new_run(run_id: str = "orun-00-a", svc: Service | None = None, **request: Any
            ) -> tuple[Run, Decision]:  # fmt: skip
    decision = decide_request(run_id, svc or service(), RunRequest("billing", "fix it", **request),
                              "claude", actor="ann", plan_job_id=f"job-00-{run_id[-1]}",
                              approval_timeout_s=60)  # fmt: skip
    return folded(run_id, decision), decision


def job(job_id: str, status: str, **more: Any) -> Job:
    return Job(id=job_id, version=5, project="orchestrator", job_type="task",
               submitted_type="task", source="orchestrator", payload={},
               normalized={"orchestrator": {"run": "orun-00-a"}}, required_capabilities=["git"],
               status=status, **more)  # fmt: skip


def test_a_run_on_a_free_service_takes_it_and_queues_its_plan_job() -> None:
    run, decision = new_run()
    assert run.state == "planning" and run.plan_job == "job-00-a"
    assert [e.TYPE for e in decision["svc-00-b"]] == ["service.claimed"]
    submitted = decision["job-00-a"][0]
    assert "orchestrator" in submitted.required_capabilities  # type: ignore[attr-defined]
    assert submitted.normalized["task"]["publish"]["mode"] == "branch"  # type: ignore[attr-defined]


def test_a_second_run_waits_in_line_and_starts_when_the_first_ends() -> None:
    first, _ = new_run()
    held = service(holder=first.id)
    second, decision = new_run("orun-00-b", held)
    assert second.state == "planning" and second.plan_job is None
    assert second.waiting_behind == first.id
    assert [e.TYPE for e in decision["svc-00-b"]] == ["service.queued"]
    queued = service(holder=first.id, waiting=[second.id])
    assert next_in_line(queued, first.id) == [second.id]
    ended = decide_on_job(first, queued, job("job-00-a", "cancelled"), [],
                          apply_job_id="job-00-x", now=NOW)  # fmt: skip
    assert ended.ended
    let_go = ended.decision["svc-00-b"][0]
    assert isinstance(let_go, ServiceEvent)
    released = evolve_service(queued, let_go, "svc-00-b", 2, "ts")
    assert released.holder is None and released.waiting == [second.id]
    start = start_next(released, first.id, second, "job-00-n")
    assert [e.TYPE for e in start[second.id]] == ["orun.planning"]
    assert [e.TYPE for e in start["svc-00-b"]] == ["service.claimed"]


def test_bad_requests_are_refused_with_their_field() -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_request(RunRequest("billing", "  ", runtime="shell", approval="maybe"), SETTINGS)
    paths = [e["path"] for e in refused.value.errors]
    assert paths == ["instruction", "approval", "runtime"]


def planned(needs_approval: bool = False, **more: Any) -> tuple[Run, Service]:
    run, _ = new_run(approval="required" if needs_approval else "auto")
    return run, service(holder=run.id)


def test_a_plan_that_needs_approval_waits_and_one_that_does_not_is_applied() -> None:
    run, svc = planned(needs_approval=True)
    followed = decide_on_job(run, svc, job("job-00-a", "succeeded"), [], apply_job_id="job-00-x",
                             now=NOW)  # fmt: skip
    after = folded(run.id, followed.decision, run)
    assert after.state == "awaiting_approval" and after.expires_at is not None
    assert not expired(after, NOW) and expired(after, NOW + timedelta(seconds=61))
    run, svc = planned()
    followed = decide_on_job(run, svc, job("job-00-a", "succeeded"), [], apply_job_id="job-00-x",
                             now=NOW)  # fmt: skip
    after = folded(run.id, followed.decision, run)
    assert after.state == "applying" and after.apply_job == "job-00-x"
    assert followed.decision["job-00-x"][0].TYPE == "job.submitted"


def awaiting() -> tuple[Run, Service]:
    run, svc = planned(needs_approval=True)
    followed = decide_on_job(run, svc, job("job-00-a", "succeeded"), [], apply_job_id="job-00-x",
                             now=NOW)  # fmt: skip
    return folded(run.id, followed.decision, run), svc


def test_four_eyes_keeps_the_submitter_from_approving() -> None:
    run, _ = awaiting()
    with pytest.raises(NotAllowed):
        decide_approve(run, "ann", four_eyes=True, apply_job_id="job-00-x")
    approved = folded(run.id, decide_approve(run, "bob", four_eyes=True, apply_job_id="job-00-x"),
                      run)  # fmt: skip
    assert approved.approved_by == "bob" and approved.state == "applying"
    assert decide_approve(run, "ann", four_eyes=False, apply_job_id="job-00-x")


def test_a_rejection_fails_the_run_with_its_reason_and_lets_go_of_the_service() -> None:
    run, svc = awaiting()
    with pytest.raises(ValidationFailed):
        decide_reject(run, svc, "bob", " ")
    decision = decide_reject(run, svc, "bob", "not now")
    after = folded(run.id, decision, run)
    assert after.state == "failed" and "not now" in after.reason and after.rejected_by == "bob"
    assert [e.TYPE for e in decision["svc-00-b"]] == ["service.released"]
    expiring = folded(run.id, decide_reject(run, svc, "cairn", "", expired=True), run)
    assert "expired" in expiring.reason
    with pytest.raises(InvalidTransition):
        decide_approve(after, "bob", four_eyes=False, apply_job_id="job-00-x")


def test_cancel_ends_a_run_without_a_job_at_once_and_asks_a_running_one() -> None:
    run, svc = awaiting()
    after = folded(run.id, decide_cancel(run, svc, "bob"), run)
    assert after.state == "cancelled"
    running, svc = planned()
    asked = folded(running.id, decide_cancel(running, svc, "bob"), running)
    assert asked.state == "planning" and asked.cancel_requested_by == "bob"
    followed = decide_on_job(asked, svc, job("job-00-a", "cancelled"), [],
                             apply_job_id="job-00-x", now=NOW)  # fmt: skip
    assert folded(running.id, followed.decision, asked).state == "cancelled"
    with pytest.raises(InvalidTransition):
        decide_cancel(folded(running.id, followed.decision, asked), svc, "bob")


def applying() -> tuple[Run, Service]:
    run, svc = planned()
    followed = decide_on_job(run, svc, job("job-00-a", "succeeded"), [], apply_job_id="job-00-x",
                             now=NOW)  # fmt: skip
    return folded(run.id, followed.decision, run), svc


def test_the_apply_job_s_end_is_the_run_s() -> None:
    run, svc = applying()
    step = JobStepStarted(epoch=1, index=3, step_id="verify")
    verifying = decide_on_job(run, svc, job("job-00-x", "running"), [step],
                              apply_job_id="job-00-y", now=NOW)  # fmt: skip
    assert folded(run.id, verifying.decision, run).state == "verifying"
    failed = job("job-00-x", "failed", outcome={"error": {"code": "rolled_back",
                 "message": "verify failed; rolled back", "verify": {"passed": True}}},
                 stages=[{"stage": "execute", "detail": {"error": {"commit": "abc"}}}])  # fmt: skip
    followed = decide_on_job(run, svc, failed, [], apply_job_id="job-00-y", now=NOW)
    after = folded(run.id, followed.decision, run)
    assert after.state == "rolled_back" and after.rolled_back and followed.ended
    assert after.commit == "abc"  # read from the failed stage's error, where the worker put it
    assert [e.TYPE for e in followed.decision["svc-00-b"]] == ["service.checked",
                                                               "service.released"]  # fmt: skip
    retried = decide_on_job(run, svc, job("job-00-x", "queued"), [], apply_job_id="job-00-y",
                            now=NOW)  # fmt: skip
    assert retried.decision == {}


def test_allowed_paths() -> None:
    allowed = ["app/**", "config/*.toml", "docs/"]
    assert is_allowed("app/a/b.py", allowed) and is_allowed("config/x.toml", allowed)
    assert is_allowed("docs/a/b.md", allowed)
    assert outside(["config/a/x.toml", "README.md", "app/../etc/passwd", "/etc/x", ""],
                   allowed) == ["", "/etc/x", "README.md", "app/../etc/passwd",
                                "config/a/x.toml"]  # fmt: skip


@given(st.lists(st.sampled_from(["app", "..", ".", "x", "a.py", ""]), min_size=1, max_size=5))
def test_no_path_that_climbs_is_ever_allowed(parts: list[str]) -> None:
    path = "/".join(parts)
    if ".." in parts or "." in parts or "" in parts:
        assert not is_allowed(path, ["**", "app/**"])


def test_an_apply_job_ended_with_no_worker_to_roll_back_needs_a_person() -> None:
    run, svc = applying()
    for status in ("cancelled", "dead_letter"):
        ended = job("job-00-x", status, attempt=2)
        after = folded(run.id, decide_on_job(run, svc, ended, [], apply_job_id="job-00-y",
                                             now=NOW).decision, run)  # fmt: skip
        assert after.state == "rollback_failed" and f"Cairn-Run: {run.id}" in after.reason
    never_ran = job("job-00-x", "cancelled", attempt=0)
    after = folded(run.id, decide_on_job(run, svc, never_ran, [], apply_job_id="job-00-y",
                                         now=NOW).decision, run)  # fmt: skip
    assert after.state == "cancelled"


def test_a_stale_approval_is_refused() -> None:
    run, _ = awaiting()
    later = NOW + timedelta(seconds=61)
    with pytest.raises(InvalidTransition) as refused:
        decide_approve(run, "bob", four_eyes=False, apply_job_id="job-00-x", now=later)
    assert "expired" in refused.value.message


def test_a_waiting_run_starts_under_the_service_s_rules_of_when_its_turn_comes() -> None:
    first, _ = new_run()
    second, _ = new_run("orun-00-b", service(holder=first.id))
    assert not second.needs_approval
    now_protected = service(spec={**SPEC, "protected": True})
    started = folded(second.id, start_next(now_protected, first.id, second, "job-00-n"), second)
    assert started.needs_approval and started.spec["protected"] is True


def test_a_service_definition_holding_a_credential_is_refused() -> None:
    leaky = {**SPEC, "verify": {"http": {"url": "http://admin:hunter22@127.0.0.1:9/health"}}}
    with pytest.raises(ValidationFailed):
        parse_service(leaky, SETTINGS)


def test_a_plan_whose_diff_holds_redacted_text_waits_for_a_person() -> None:
    run, svc = planned()
    hiding = job("job-00-a", "succeeded", stages=[{"stage": "execute", "attempt": 0,
                                                   "detail": {"redacted": True}}])  # fmt: skip
    after = folded(run.id, decide_on_job(run, svc, hiding, [], apply_job_id="job-00-x",
                                         now=NOW).decision, run)  # fmt: skip
    assert after.redacted and after.state == "awaiting_approval"


def test_a_run_that_cannot_start_fails_and_the_next_in_line_starts() -> None:
    first, _ = new_run()
    bad, _ = new_run("orun-00-b", service(holder=first.id))
    good, _ = new_run("orun-00-c", service(holder=first.id, waiting=[bad.id]))
    leaky = msgspec.structs.replace(bad, instruction="see http://admin:hunter22@10.0.0.1/")
    decision = start_next(service(waiting=[bad.id, good.id]), first.id, [leaky, good], "job-00-n")
    assert folded(bad.id, decision, bad).state == "failed"
    assert folded(good.id, decision, good).plan_job == "job-00-n"
    assert [e.TYPE for e in decision["svc-00-b"]] == ["service.released", "service.claimed"]
