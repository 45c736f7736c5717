"""`cairn tasks-md`: export a project's board as TASKS.md, and sync an edited copy back through
the task commands. A sync prints each row it applied and each it refused (with the file's and
the board's values), and leaves the file as it is unless `--write` (and nothing was refused)."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cairn.api.cli.store import keys_of, open_client
from cairn.commands.runner import id_for_key
from cairn.commands.settings import Settings
from cairn.commands.tasks.task import create_task, load_tasks, transition_task, update_task
from cairn.domain.errors import CairnError
from cairn.domain.tasks.spec import TaskPatch, TaskSpec, parse_model
from cairn.domain.tasks.states import Flags
from cairn.domain.tasks.tasks_md import (
    RowPlan,
    TasksFile,
    depends_on,
    parse_tasks_md,
    plan_sync,
    render_tasks_md,
)
from cairn.projections.positions import PositionWatcher
from cairn.projections.tasks.board import NAME as BOARD
from cairn.projections.tasks.board import Board
from cairn.streams.driver import Client
from cairn.streams.envelope import now_rfc3339, text
from cairn.streams.store import EventStore

ACTOR = "cli:tasks-md"


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    refused: int = 0


def export(settings: Settings, project: str, out: str | None) -> int:
    async def run() -> str:
        client = await open_client(settings)
        try:
            return await _render(client, settings, project)
        finally:
            await client.aclose()

    text = asyncio.run(run())
    if out:
        Path(out).write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def _render(client: Client, settings: Settings, project: str) -> str:
    tasks = await Board(client, keys_of(settings)).project_tasks(project)
    return render_tasks_md(project, tasks, now_rfc3339())


def sync(settings: Settings, path: Path, project: str | None, *, write: bool) -> int:
    parsed = parse_tasks_md(path.read_text())
    board_project = project or parsed.project or "default"

    async def run() -> Report:
        client = await open_client(settings)
        try:
            store = EventStore(client, keys_of(settings), settings.command_ttl_s)
            report = await sync_file(store, parsed, board_project, settings.flags)
            if write and not report.refused:
                # The board shows every write of the project so far (this sync's and any
                # earlier one's) before the file is written from it.
                partition = store.keys.partition_of(board_project)
                last = await client.xrevrange(store.keys.log(partition), count=1)
                position = f"{partition}:{text(last[0][0])}" if last else ""
                await PositionWatcher(client, store.keys, BOARD).wait(
                    position, settings.read_your_writes_timeout_s)  # fmt: skip
                path.write_text(await _render(client, settings, board_project))
                report.lines.append(f"wrote {path} again from the board")
        finally:
            await client.aclose()
        return report

    report = asyncio.run(run())
    for line in report.lines:
        print(line)
    if write and report.refused:
        print(f"{path} left as it is: {report.refused} row(s) refused", file=sys.stderr)
    return 1 if report.refused else 0


async def sync_file(store: EventStore, parsed: TasksFile, project: str, flags: Flags) -> Report:
    """Plan every row against the board as the store has it, then apply each plan."""
    ids = [r.task_id for r in parsed.rows] + list(parsed.exported)
    board = await load_tasks(store, ids)
    report = Report()
    seen: dict[str, int] = {}
    for plan in plan_sync(parsed, board, project):
        title = plan.changes.get("title", "") if plan.kind == "create" else ""
        seen[title] = seen.get(title, 0) + 1
        try:
            if plan.kind == "create":
                await _create(store, plan, f"{parsed.exported_at}:{title}#{seen[title]}",
                              project, report)  # fmt: skip
            else:
                await _apply(store, plan, flags, report)
        except CairnError as e:
            _refuse(report, plan, e.message)
    gone = [i for i in parsed.exported if i not in {r.task_id for r in parsed.rows}]
    if gone:
        report.lines.append(f"kept     {len(gone)} task(s) whose rows left the file (a sync "
                            f"deletes nothing): {', '.join(gone)}")  # fmt: skip
    return report


async def _apply(store: EventStore, plan: RowPlan, flags: Flags, report: Report) -> None:
    if plan.kind == "same":
        return
    if plan.kind == "refuse":
        clashes = [f"{c['field']}: the file says {c['file']!r}, the board says {c['board']!r}"
                   for c in plan.conflicts]  # fmt: skip
        _refuse(report, plan, "; ".join([*clashes, plan.reason]))
        return
    version = plan.expected_version
    patch = {k: v or None for k, v in plan.changes.items() if k in ("title", "assignee")}
    if patch:
        updated = await update_task(store, plan.task_id, parse_model(TaskPatch, patch),
                                    actor=ACTOR, expected_version=version)  # fmt: skip
        version = updated.version
        _applied(report, plan, list(patch))
    if "status" in plan.changes:
        await transition_task(store, plan.task_id, plan.changes["status"], flags, actor=ACTOR,
                              reason="TASKS.md", expected_version=version)  # fmt: skip
        _applied(report, plan, ["status"])


def _applied(report: Report, plan: RowPlan, names: list[str]) -> None:
    for name in names:
        report.lines.append(f"applied  {plan.task_id}  {name}: {plan.before[name]!r} -> "
                            f"{plan.changes[name]!r}")  # fmt: skip


async def _create(store: EventStore, plan: RowPlan, row_key: str, project: str,
                  report: Report) -> None:  # fmt: skip
    cells = plan.changes
    # The same file synced again creates nothing more: a new row's id follows from the export
    # it was added to and the row (its title, and which of the rows with that title it is).
    key = f"tasks-md:{project}:{row_key}"
    task_id = id_for_key(store.keys, "task", project, key)
    if await load_tasks(store, [task_id]):
        report.lines.append(f"exists   {task_id}  {cells['title']!r} (line {plan.line}, created "
                            "by an earlier sync)")  # fmt: skip
        return
    spec = parse_model(TaskSpec, {
        "project": project, "title": cells["title"], "task_type": "feature", "priority": 1,
        "status": cells["status"], "assignee": cells["assignee"] or None,
        "blocked_by": depends_on(cells["depends on"]),
    }, root=f"line {plan.line}")  # fmt: skip
    result = await create_task(store, spec, actor=ACTOR, idempotency_key=key)
    report.lines.append(f"created  {result.id}  {cells['title']!r} (line {plan.line})")


def _refuse(report: Report, plan: RowPlan, why: str) -> None:
    report.refused += 1
    report.lines.append(f"refused  {plan.task_id or f'line {plan.line}'}  {why}")
