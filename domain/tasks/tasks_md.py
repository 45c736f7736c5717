"""TASKS.md: a project's board as a markdown table (id, status, title, assignee, depends on),
and what an edited copy asks for. The export ends with a hidden comment holding each task's
version and cells as exported, so a sync can tell the file's edits from the board's: an edit
of a field the board also changed since is refused naming both values; nothing is lost."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn.domain.errors import ValidationFailed
from cairn.domain.tasks.states import INITIAL_CHOICES, Status
from cairn.domain.tasks.task import Task

COLUMNS = ("id", "status", "title", "assignee", "depends on")
EDITABLE = ("status", "title", "assignee")
MARK = "<!-- cairn:tasks-md "
NEW_IDS = ("", "new", "-")  # an id cell a new row may have


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    cells: dict[str, str]  # by column, as written (unescaped)

    @property
    def task_id(self) -> str:
        return self.cells["id"]


@dataclass(frozen=True, slots=True)
class TasksFile:
    rows: list[Row]
    project: str | None = None
    exported_at: str = ""
    exported: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> version, cells


@dataclass(frozen=True, slots=True)
class RowPlan:
    """What a row asks for: `apply` its `changes` at `expected_version`, `create` a task,
    `refuse` it (`conflicts` with both values, or `reason`), or nothing (`same`)."""

    kind: str  # apply, create, refuse, same
    line: int
    task_id: str = ""
    changes: dict[str, str] = field(default_factory=dict)  # field -> the file's value
    before: dict[str, str] = field(default_factory=dict)  # field -> the board's value
    expected_version: int = 0
    conflicts: list[dict[str, str]] = field(default_factory=list)  # field, file, board
    reason: str = ""
    row: Row | None = None


# ---- rendering ------------------------------------------------------------------------------


def cells_of(task: Task) -> dict[str, str]:
    """A task's row, each value as one table cell shows it."""
    return {
        "id": task.id, "status": task.status, "title": _flat(task.title),
        "assignee": _flat(task.assignee or ""), "depends on": ", ".join(task.blocked_by),
    }  # fmt: skip


def render_tasks_md(project: str, tasks: Sequence[Task], exported_at: str) -> str:
    """The board as TASKS.md, with the hidden record of what was exported."""
    lines = [f"# Tasks: {project}", "",
             "Edit status, title or assignee, or add a row with no id; then `cairn tasks-md "
             "sync` this file.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]  # fmt: skip
    record: dict[str, Any] = {}
    for task in tasks:
        cells = cells_of(task)
        lines.append("| " + " | ".join(_escape(cells[c]) for c in COLUMNS) + " |")
        record[task.id] = {"version": task.version, **{c: cells[c] for c in COLUMNS[1:]}}
    meta = {"project": project, "exported_at": exported_at, "tasks": record}
    hidden = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        hidden = hidden.replace(char, escaped)  # so no text can end the comment
    return "\n".join([*lines, "", MARK + hidden + " -->", ""])


def _flat(text: str) -> str:
    return " ".join(text.split())


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


# ---- parsing --------------------------------------------------------------------------------


def parse_tasks_md(text: str) -> TasksFile:
    """The rows of the file's table (the first with the TASKS.md columns) and the export's
    record, if the file has one."""
    header: list[str] | None = None
    rows: list[Row] = []
    meta: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(MARK) and stripped.endswith("-->"):
            meta = _record(stripped[len(MARK):-3], number)
            continue
        if not stripped.startswith("|"):
            continue
        cells = _split(stripped)
        names = [c.lower().replace("_", " ") for c in cells]
        if header is None:
            if set(COLUMNS) <= set(names):
                header = names
            continue
        if all(re.fullmatch(r":?-+:?", c) for c in cells if c):
            continue
        if len(cells) != len(header):
            reason = f"{len(cells)} cells; the header has {len(header)}"
            raise ValidationFailed(f"line {number} has {reason}",
                                   [{"path": f"line {number}", "reason": reason}])  # fmt: skip
        rows.append(Row(number, {n: c for n, c in zip(header, cells, strict=True)
                                 if n in COLUMNS}))  # fmt: skip
    if header is None:
        reason = "no table with the columns " + ", ".join(COLUMNS)
        raise ValidationFailed(f"the file has {reason}", [{"path": "file", "reason": reason}])
    return TasksFile(rows, meta.get("project"), str(meta.get("exported_at", "")),
                     dict(meta.get("tasks") or {}))  # fmt: skip


def _record(raw: str, number: int) -> dict[str, Any]:
    try:
        found = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValidationFailed(f"line {number}: the export's record is damaged ({e}); export "
                               "again", [{"path": f"line {number}", "reason": "not the "
                                          "record an export writes"}]) from None  # fmt: skip
    return found if isinstance(found, dict) else {}


def _split(line: str) -> list[str]:
    """A table line's cells, unescaped; `\\|` is a pipe inside a cell."""
    cells, current, escaped = [], "", False
    for char in line.strip()[1:]:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        cells.append(current.strip())
    return cells


# ---- what a sync asks for -------------------------------------------------------------------


def plan_sync(parsed: TasksFile, board: Mapping[str, Task], project: str) -> list[RowPlan]:
    """Each row's plan against the board as it is now (`board`: the file's tasks). A field the
    file changed since the export is applied; if the board changed it too, the row is refused
    with both values. Without an export record, what differs from the board is the edit."""
    plans: list[RowPlan] = []
    for row in parsed.rows:
        if row.task_id.lower() in NEW_IDS:
            plans.append(_new_row(row))
            continue
        task = board.get(row.task_id)
        if task is None or task.project != project:
            plans.append(RowPlan("refuse", row.line, row.task_id, reason=f"no task "
                                 f"{row.task_id} in project {project}"))  # fmt: skip
            continue
        plans.append(_existing_row(row, task, parsed.exported.get(task.id)))
    return plans


def _existing_row(row: Row, task: Task, exported: dict[str, Any] | None) -> RowPlan:
    now = cells_of(task)
    then = exported or now
    edited = {f: row.cells[f] for f in EDITABLE if row.cells[f] != then.get(f, now[f])}
    if row.cells["status"] not in {s.value for s in Status}:
        return RowPlan("refuse", row.line, task.id, reason=f"status {row.cells['status']!r} is "
                       f"not a status ({', '.join(s.value for s in Status)})")  # fmt: skip
    if exported and row.cells["depends on"] != then.get("depends on", now["depends on"]):
        return RowPlan("refuse", row.line, task.id, reason="depends on is not synced from the "
                       "file: change dependencies with the API or the board")  # fmt: skip
    if exported and exported.get("version") != task.version:
        # A clash: both sides changed the field since the export, to different values.
        conflicts = [{"field": f, "file": value, "board": now[f]} for f, value in edited.items()
                     if now[f] != then.get(f) and now[f] != value]  # fmt: skip
        if conflicts:
            then_v = int(exported.get("version", 0))
            return RowPlan("refuse", row.line, task.id, conflicts=conflicts,
                           expected_version=then_v, reason=f"changed on the board since the "
                           f"export (version {then_v} then, {task.version} now)")  # fmt: skip
    edited = {f: v for f, v in edited.items() if now[f] != v}
    if not edited:
        return RowPlan("same", row.line, task.id)
    return RowPlan("apply", row.line, task.id, changes=edited,
                   before={f: now[f] for f in edited}, expected_version=task.version)  # fmt: skip


def _new_row(row: Row) -> RowPlan:
    status = row.cells["status"] or Status.BACKLOG.value
    if not row.cells["title"]:
        return RowPlan("refuse", row.line, reason="a new row needs a title", row=row)
    if status not in {s.value for s in INITIAL_CHOICES}:
        allowed = ", ".join(sorted(s.value for s in INITIAL_CHOICES))
        return RowPlan("refuse", row.line, reason=f"a new task starts in {allowed}, not "
                       f"{status!r}", row=row)  # fmt: skip
    return RowPlan("create", row.line, changes={**row.cells, "status": status}, row=row)


def depends_on(cell: str) -> list[str]:
    """The ids of a `depends on` cell."""
    return [part.strip() for part in cell.split(",") if part.strip()]
