"""Every pair of states: the table's transitions succeed, every other pair is refused."""

from __future__ import annotations

import itertools

import pytest

from cairn.domain.errors import ClaimRequired, DependencyUnresolved, InvalidTransition
from cairn.domain.tasks.events import TaskTransitioned
from cairn.domain.tasks.states import TRANSITIONS, Flags, Status
from cairn.domain.tasks.task import Task, decide_transition

EXPECTED = {
    "backlog": {"ready", "cancelled"},
    "ready": {"in_progress", "blocked", "backlog", "cancelled"},
    "in_progress": {"in_review", "blocked", "ready", "cancelled"},
    "in_review": {"done", "in_progress", "blocked"},
    "blocked": {"ready", "backlog", "cancelled"},
    "done": {"ready"},
    "cancelled": {"backlog"},
}


def task(status: str, **kw: object) -> Task:
    return Task(id="task-00-a", version=1, project="p", title="t", task_type="chore",
                priority=0, status=status, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_table_is_exactly_the_specified_one() -> None:
    assert {s.value: {t.value for t in ts} for s, ts in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(list(Status), list(Status))))
@pytest.mark.parametrize("auto_approve", [False, True])
def test_every_pair(src: Status, dst: Status, auto_approve: bool) -> None:
    allowed = EXPECTED[src] | ({"done"} if auto_approve and src == "in_progress" else set())
    flags = Flags(auto_approve_review=auto_approve)
    if dst.value in allowed:
        decision = decide_transition(task(src), dst, {}, flags, force=dst == "in_progress")
        [event] = decision["task-00-a"]
        assert isinstance(event, TaskTransitioned)
        assert (event.from_status, event.to_status) == (src.value, dst.value)
    else:
        with pytest.raises(InvalidTransition) as caught:
            decide_transition(task(src), dst, {}, flags, force=True)
        assert set(caught.value.details["allowed_targets"]) == allowed


def test_unknown_target_lists_allowed() -> None:
    with pytest.raises(InvalidTransition) as caught:
        decide_transition(task("backlog"), "flying", {}, Flags())
    assert caught.value.details["allowed_targets"] == ["ready", "cancelled"]


def test_in_progress_needs_a_claim_or_force() -> None:
    with pytest.raises(ClaimRequired):
        decide_transition(task("ready"), "in_progress", {}, Flags())
    [event] = decide_transition(task("ready"), "in_progress", {}, Flags(), force=True)["task-00-a"]
    assert isinstance(event, TaskTransitioned) and event.forced
    [event] = decide_transition(task("ready"), "in_progress", {}, Flags(), by_claim=True)[
        "task-00-a"
    ]
    assert isinstance(event, TaskTransitioned) and not event.forced


@pytest.mark.parametrize("blocker_status", ["backlog", "ready", "in_progress", "blocked"])
def test_dependency_guard_refuses_ready_while_blocker_open(blocker_status: str) -> None:
    blocker = Task(id="task-00-b", version=1, project="p", title="b", task_type="chore",
                   priority=0, status=blocker_status)  # fmt: skip
    t = task("backlog", blocked_by=["task-00-b"])
    with pytest.raises(DependencyUnresolved) as caught:
        decide_transition(t, "ready", {"task-00-b": blocker}, Flags())
    assert caught.value.details["blockers"] == [{"id": "task-00-b", "status": blocker_status}]
    forced = decide_transition(t, "ready", {"task-00-b": blocker}, Flags(), force=True)
    [event] = forced["task-00-a"]
    assert isinstance(event, TaskTransitioned) and event.forced


@pytest.mark.parametrize("blocker_status", ["done", "cancelled"])
def test_resolved_blockers_do_not_block(blocker_status: str) -> None:
    blocker = Task(id="task-00-b", version=1, project="p", title="b", task_type="chore",
                   priority=0, status=blocker_status)  # fmt: skip
    t = task("backlog", blocked_by=["task-00-b"])
    decision = decide_transition(t, "ready", {"task-00-b": blocker}, Flags())
    [event] = decision["task-00-a"]  # the task moves, unforced; nothing else is touched
    assert isinstance(event, TaskTransitioned)
    assert (event.to_status, event.forced) == ("ready", False)
    assert set(decision) == {"task-00-a"}


def test_reopening_a_blocker_blocks_its_ready_dependents() -> None:
    blocker = task("done", blocks=["task-00-c"])
    dependent = Task(id="task-00-c", version=3, project="p", title="c", task_type="chore",
                     priority=0, status="ready", blocked_by=["task-00-a"])  # fmt: skip
    decision = decide_transition(blocker, "ready", {"task-00-c": dependent}, Flags())
    [blocked] = decision["task-00-c"]
    assert isinstance(blocked, TaskTransitioned) and blocked.to_status == "blocked"
    assert (blocked.blocked_reason or {})["code"] == "waiting_on_dependencies"
