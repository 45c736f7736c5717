"""The deterministic planner and the graph every plan goes through: granularity, stable keys,
markers, cycles broken or refused, waves that respect every edge and the hint."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.errors import ValidationFailed
from cairn.domain.planning.markers import references
from cairn.domain.planning.plan_graph import PlanTask, parse_agent_plan, settle_graph
from cairn.domain.planning.planner import plan_document
from tests.domain.planning.prd_samples import ACCOUNTS


def check_graph(tasks: list[PlanTask], hint: int) -> None:
    graph = settle_graph(tasks, hint, break_cycles=True)
    wave_of = {k: i for i, wave in enumerate(graph.waves) for k in wave}
    assert sorted(wave_of) == sorted(t.key for t in tasks)
    assert all(len(wave) <= hint for wave in graph.waves)
    for task in graph.tasks:
        assert all(wave_of[b] < wave_of[task.key] for b in task.depends_on)


def test_the_sample_at_each_granularity() -> None:
    plans = {g: plan_document(ACCOUNTS, g) for g in ("coarse", "balanced", "fine")}
    counts = [len(p.tasks) for p in plans.values()]
    assert counts[0] < counts[1] < counts[2]
    fine = {t.key: t for t in plans["fine"].tasks}
    assert fine["s1/2"].depends_on == ("s1/1",)  # depends on #1, in its own section
    assert fine["s2.1/2"].depends_on[-1] == "s2.1/1"  # blocked by a quoted title
    assert "s1/1" in fine["s2.2/1"].depends_on  # the section's "Depends on section 1"
    assert fine["s1/1"].priority == 2 and fine["s3"].task_type == "docs"
    assert {s["title"] for s in plans["fine"].skipped} == {"Overview", "Open questions"}
    coarse = {t.key: t for t in plans["coarse"].tasks}
    assert coarse["s3"].depends_on == ("s2",) and "s1" in coarse["s4"].depends_on
    for plan in plans.values():
        check_graph(plan.tasks, 2)


def test_a_reworded_item_keeps_its_key() -> None:
    before = {t.key: t.title for t in plan_document(ACCOUNTS, "fine").tasks}
    after = {t.key: t.title for t in plan_document(
        ACCOUNTS.replace("Reset email", "Send the reset mail"), "fine").tasks}  # fmt: skip
    assert before.keys() == after.keys()
    assert after["s2.2/1"] == "Send the reset mail" != before["s2.2/1"]


def test_after_counts_only_before_a_reference() -> None:
    assert references("Reset email (after #1)") == ["#1"]
    assert references("after sign-in the user sees the board") == []
    assert references('depends on #2, "Login form" and 3.1') == ["#2", '"Login form"', "3.1"]


@pytest.mark.parametrize("line", ["After: Charge on invoice finalization.",
                                  "- **After:** Charge on invoice finalization",
                                  "Depends on: Charge on invoice finalization."])  # fmt: skip
def test_a_line_labelled_after_names_a_title_as_depends_on_does(line: str) -> None:
    assert references(line) == ["Charge on invoice finalization"]


def test_a_labelled_after_makes_the_edge_in_a_plan() -> None:
    document = """# Billing

## Charge on invoice finalization

Charge the card when the invoice is final.

## Send the receipt

After: Charge on invoice finalization.
"""
    tasks = plan_document(document, "fine").tasks
    [receipt] = [t for t in tasks if t.title == "Send the receipt"]
    [charge] = [t for t in tasks if t.title == "Charge on invoice finalization"]
    assert list(receipt.depends_on) == [charge.key]


def test_a_written_cycle_is_broken_with_a_warning_and_an_agent_cycle_refused() -> None:
    tasks = [PlanTask("a", "A", depends_on=("b",)), PlanTask("b", "B", depends_on=("a",))]
    graph = settle_graph(tasks, 4, break_cycles=True)
    assert graph.warnings[0]["code"] == "cycle_broken"
    assert graph.warnings[0]["dropped"] == {"task": "a", "blocked_by": "b"}
    with pytest.raises(ValidationFailed) as refused:
        settle_graph(tasks, 4, break_cycles=False)
    assert refused.value.errors[0]["path"] == "plan.tasks[0].depends_on[0]"


def test_an_agent_plan_is_checked_like_a_persons_input() -> None:
    with pytest.raises(ValidationFailed) as bad:
        parse_agent_plan({"tasks": [{"key": "a", "title": "", "depends_on": ["zz"]},
                                    {"key": "a", "title": "B", "priority": "huge"}]})  # fmt: skip
    paths = {e["path"] for e in bad.value.errors}
    assert {"plan.tasks[0].title", "plan.tasks[1].priority"} <= paths
    with pytest.raises(ValidationFailed) as dangling:
        parse_agent_plan({"tasks": [{"key": "a", "title": "A", "depends_on": ["zz"]},
                                    {"key": "a", "title": "B"}]})  # fmt: skip
    assert {e["path"] for e in dangling.value.errors} == {
        "plan.tasks[0].depends_on[0]", "plan.tasks[1].key"}  # fmt: skip


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = ["# A PRD"]
    for s in range(draw(st.integers(1, 4))):
        lines.append(f"## {draw(st.sampled_from(['', f'{s + 1}. ']))}Part {s}")
        for sub in range(draw(st.integers(0, 2))):
            lines.append(f"### Piece {s}.{sub}")
            lines.append(draw(st.sampled_from(["Some prose.", "Depends on section 1.", ""])))
            for i in range(draw(st.integers(0, 3))):
                marker = draw(
                    st.sampled_from(
                        [
                            "",
                            " (depends on #1)",
                            " (after #2)",
                            f' (blocked by "Part {s}")',
                            " depends on #3",
                        ]
                    )
                )
                bullet = draw(st.sampled_from([f"{i + 1}.", "- [ ]", "-"]))
                lines.append(f"{bullet} Item {s}.{sub}.{i}{marker}")
        lines.append(draw(st.sampled_from(["", "Depends on Part 0.", "1. Own item"])))
    return "\n".join(lines) + "\n"


@given(documents(), st.integers(1, 5))
def test_any_document_plans_to_a_graph_that_holds(source: str, hint: int) -> None:
    counts = []
    for granularity in ("coarse", "balanced", "fine"):
        plan = plan_document(source, granularity)
        keys = [t.key for t in plan.tasks]
        assert len(keys) == len(set(keys))
        assert all(d in keys for t in plan.tasks for d in t.depends_on)
        check_graph(plan.tasks, hint)
        counts.append(len(plan.tasks))
    assert counts == sorted(counts)
