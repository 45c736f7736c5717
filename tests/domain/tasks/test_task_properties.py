"""Random command sequences against the pure decider never break an invariant."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.domain.decision import Decision
from cairn.domain.errors import CorruptStream, DomainError, ValidationFailed, VersionConflict
from cairn.domain.tasks.events import TaskCreated, TaskDependencyAdded, TaskEvent
from cairn.domain.tasks.graph import find_cycle
from cairn.domain.tasks.spec import TaskSpec, parse_model
from cairn.domain.tasks.states import RESOLVED, Flags, Status
from cairn.domain.tasks.task import (
    Task,
    decide_add_dependency,
    decide_create,
    decide_remove_dependency,
    decide_transition,
    evolve,
)

N = 6
IDS = [f"task-00-{i:016d}" for i in range(N)]

commands = st.lists(
    st.one_of(
        st.tuples(st.just("transition"), st.integers(0, N - 1), st.sampled_from(list(Status)),
                  st.booleans()),
        st.tuples(st.just("depend"), st.integers(0, N - 1), st.integers(0, N - 1), st.just(False)),
        st.tuples(st.just("undepend"), st.integers(0, N - 1), st.integers(0, N - 1),
                  st.just(False)),
    ),
    max_size=60,
)  # fmt: skip


def apply(tasks: dict[str, Task], decision: Decision) -> None:
    for agg, events in decision.items():
        for event in events:
            assert isinstance(event, TaskEvent)
            state = tasks.get(agg)
            tasks[agg] = evolve(state, event, agg, (state.version if state else 0) + 1, "t")


def check_invariants(tasks: dict[str, Task]) -> None:
    for t in tasks.values():
        for b in t.blocked_by:
            assert t.id in tasks[b].blocks, "blocks mirrors blocked_by"
        for d in t.blocks:
            assert t.id in tasks[d].blocked_by, "blocked_by mirrors blocks"
        if t.status == Status.READY and not t.forced:
            assert all(tasks[b].status in RESOLVED for b in t.blocked_by), t
    assert not find_cycle({t.id: t.blocked_by for t in tasks.values()})


@settings(max_examples=300, deadline=None)
@given(commands, st.booleans())
def test_random_sequences_keep_invariants(cmds: list[tuple[Any, ...]], auto: bool) -> None:
    flags = Flags(auto_approve_review=auto)
    tasks: dict[str, Task] = {}
    for task_id in IDS:
        spec = TaskSpec.model_validate({"title": task_id, "task_type": "chore", "priority": 1})
        apply(tasks, decide_create(task_id, spec, tasks, force=False))
    for kind, a, b, force in cmds:
        try:
            if kind == "transition":
                decision = decide_transition(tasks[IDS[a]], b, tasks, flags, force=force)
            elif kind == "depend":
                decision = decide_add_dependency(tasks[IDS[a]], IDS[b], tasks)
            else:
                decision = decide_remove_dependency(tasks[IDS[a]], IDS[b])
        except DomainError:
            continue
        apply(tasks, decision)
        check_invariants(tasks)


@given(st.integers(-3, 12).filter(lambda v: v != 2))
def test_an_event_out_of_version_order_is_a_corrupt_stream_not_a_conflict(version: int) -> None:
    created = TaskCreated(project="p", title="t", task_type="chore", priority=1, status="backlog")
    task = evolve(None, created, IDS[0], 1, "t")
    with pytest.raises(CorruptStream) as caught:
        evolve(task, TaskDependencyAdded(blocker_id=IDS[1]), IDS[0], version, "t")
    assert not isinstance(caught.value, VersionConflict)  # a 409 says "reload and retry"
    assert (caught.value.status, caught.value.code) == (500, "corrupt_stream")
    assert caught.value.details == {"aggregate_id": IDS[0], "version": version,
                                    "expected_version": 2}  # fmt: skip
    with pytest.raises(CorruptStream, match=r"not task\.created"):
        evolve(None, TaskDependencyAdded(blocker_id=IDS[1]), IDS[0], 1, "t")


@pytest.mark.parametrize("field", ["title", "description"])
def test_a_text_is_measured_as_sent_before_its_whitespace_is_stripped(field: str) -> None:
    # The schema says maxLength of the text sent; 30,000 tabs strip to "" but are refused.
    base = {"title": "a task", "task_type": "feature", "priority": 1}
    with pytest.raises(ValidationFailed) as refused:
        parse_model(TaskSpec, {**base, field: "\t" * 30_000 + "x"})
    assert refused.value.details["errors"][0]["path"] == field
    assert parse_model(TaskSpec, {**base, field: "  kept  "}).model_dump()[field] == "kept"


def test_a_name_is_ascii_as_the_schema_says() -> None:
    # JSON Schema reads \w as ASCII; the server refuses what the schema refuses.
    with pytest.raises(ValidationFailed) as refused:
        parse_model(TaskSpec, {"title": "t", "task_type": "feature", "priority": 1,
                               "project": "Pò"})  # fmt: skip
    assert [e["path"] for e in refused.value.details["errors"]] == ["project"]
