"""TASKS.md: any board renders to a table that parses back to the same cells (pipes,
backslashes, line breaks and comment markers in titles included) and syncs to nothing; an edit
applies at the exported version; an edit of a field the board changed since is refused naming
both values, while other edits of a changed task still apply; new rows create tasks."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.errors import ValidationFailed
from cairn.domain.tasks.task import Task
from cairn.domain.tasks.tasks_md import cells_of, parse_tasks_md, plan_sync, render_tasks_md

TITLES = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40).filter(
    lambda t: t.strip()
)


def task(n: int, **fields: Any) -> Task:
    base: dict[str, Any] = {"id": f"task-01-{n:026d}", "version": 3, "project": "acme",
                            "title": f"Task {n}", "task_type": "feature", "priority": 1,
                            "status": "ready"}  # fmt: skip
    return Task(**{**base, **fields})


def edited(text: str, task_id: str, column: int, value: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith(f"| {task_id} |"):
            cells = line.split(" | ")
            cells[column] = value
            line = " | ".join(cells)
        lines.append(line)
    return "\n".join(lines) + "\n"


@given(st.lists(st.tuples(TITLES, st.none() | TITLES), min_size=0, max_size=6))
def test_any_board_round_trips_and_syncs_to_nothing(words: list[tuple[str, str | None]]) -> None:
    tasks = [task(i, title=title, assignee=who, blocked_by=[task(0).id] if i else [])
             for i, (title, who) in enumerate(words)]  # fmt: skip
    parsed = parse_tasks_md(render_tasks_md("acme", tasks, "2026-01-01T00:00:00.000Z"))
    assert parsed.project == "acme" and len(parsed.rows) == len(tasks)
    for row, t in zip(parsed.rows, tasks, strict=True):
        assert row.cells == cells_of(t)
        assert parsed.exported[t.id]["version"] == t.version
    board = {t.id: t for t in tasks}
    assert [p.kind for p in plan_sync(parsed, board, "acme")] == ["same"] * len(tasks)


def test_an_edited_status_applies_at_the_exported_version() -> None:
    t = task(1)
    text = edited(render_tasks_md("acme", [t], "x"), t.id, 1, "done")
    [plan] = plan_sync(parse_tasks_md(text), {t.id: t}, "acme")
    assert (plan.kind, plan.changes, plan.expected_version) == ("apply", {"status": "done"}, 3)
    assert plan.before == {"status": "ready"}


def test_a_stale_edit_is_refused_with_both_values_and_a_fresh_one_applies() -> None:
    t = task(1)
    text = render_tasks_md("acme", [t], "x")
    moved = msgspec.structs.replace(t, version=5, status="in_progress", title="Renamed")
    [stale] = plan_sync(parse_tasks_md(edited(text, t.id, 1, "done")), {t.id: moved}, "acme")
    assert stale.kind == "refuse"
    assert stale.conflicts == [{"field": "status", "file": "done", "board": "in_progress"}]
    assert "version 3 then, 5 now" in stale.reason
    [fresh] = plan_sync(parse_tasks_md(edited(text, t.id, 3, "ann")), {t.id: moved}, "acme")
    assert (fresh.kind, fresh.changes, fresh.expected_version) == ("apply", {"assignee": "ann"},
                                                                   5)  # fmt: skip
    [same] = plan_sync(parse_tasks_md(text), {t.id: moved}, "acme")
    assert same.kind == "same"  # the board's own changes are not undone
    agreed = edited(text, t.id, 1, "in_progress")  # both sides made the same change
    assert plan_sync(parse_tasks_md(agreed), {t.id: moved}, "acme")[0].kind == "same"


def test_new_rows_and_bad_rows() -> None:
    t = task(1)
    text = render_tasks_md("acme", [t], "x").replace(
        "\n\n<!--", f"\n|  | ready | Write docs | bo | {t.id} |\n| new | done | Late | | |"
        "\n| task-01-" + "9" * 26 + " | ready | Ghost | | |\n\n<!--", 1)
    text = edited(text, t.id, 1, "finished")
    plans = plan_sync(parse_tasks_md(text), {t.id: t}, "acme")
    assert [p.kind for p in plans] == ["refuse", "create", "refuse", "refuse"]
    assert "'finished' is not a status" in plans[0].reason
    assert plans[1].changes["title"] == "Write docs" and plans[1].changes["depends on"] == t.id
    assert "starts in backlog, ready" in plans[2].reason
    assert "no task" in plans[3].reason


@pytest.mark.parametrize("text", ["# nothing here\n", "| a | b |\n|---|---|\n| 1 | 2 |\n"])
def test_a_file_without_the_table_is_refused(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_tasks_md(text)
    assert caught.value.errors[0]["path"] == "file"
