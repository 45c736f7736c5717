"""`cairn tasks-md` as a person runs it, real processes against the real server: export, edit a
status, sync -> the task moved; a stale edit is refused showing both values and the file is
left as it was; a new row becomes a task, once however often the file is synced; --write
exports again when nothing was refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cairn.commands.tasks.task import create_task, load_task, load_tasks, update_task
from cairn.domain.tasks.spec import TaskPatch, TaskSpec
from cairn.projections.tasks.board import Board
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore
from tests.api.test_cli import cairn


def edit(path: Path, task_id: str, column: int, value: str) -> None:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith(f"| {task_id} |"):
            cells = line.split(" | ")
            cells[column] = value
            line = " | ".join(cells)
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


async def board_shows(store: EventStore, keys: Keys, ids: list[str]) -> None:
    board = Board(store.redis, keys)
    for _ in range(200):
        found = await board.get_tasks(ids)
        current = await load_tasks(store, ids)
        if all(i in found and found[i].version == current[i].version for i in ids):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the board read model did not catch up")


async def test_export_edit_sync_and_a_stale_edit(
    server: EmbeddedServer, keys: Keys, store: EventStore, tmp_path: Path, projector: None
) -> None:
    ids = []
    for title in ("Add login", "Write | docs"):
        spec = TaskSpec.model_validate({"project": "acme", "title": title, "task_type": "feature",
                                        "priority": 1, "status": "ready"})  # fmt: skip
        ids.append((await create_task(store, spec, actor="t")).id)
    await board_shows(store, keys, ids)
    path = tmp_path / "TASKS.md"
    exported = cairn(server, keys, "tasks-md", "export", "--project", "acme", "--out", str(path))
    assert exported.returncode == 0, exported.stderr
    text = path.read_text()
    assert "| id | status | title | assignee | depends on |" in text
    assert f"| {ids[1]} | ready | Write \\| docs |  |  |" in text

    edit(path, ids[0], 1, "backlog")
    synced = cairn(server, keys, "tasks-md", "sync", str(path))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert f"applied  {ids[0]}  status: 'ready' -> 'backlog'" in synced.stdout
    assert (await load_task(store, ids[0])).status == "backlog"

    # Someone renames the second task on the board; the file's rename of it is stale.
    await update_task(store, ids[1], TaskPatch(title="Write the docs"), actor="ann")
    edit(path, ids[1], 2, "Docs, please")
    edit(path, ids[0], 3, "bo")  # unchanged on the board since: still applies
    before = path.read_text()
    stale = cairn(server, keys, "tasks-md", "sync", str(path), "--write")
    assert stale.returncode == 1
    assert f"refused  {ids[1]}  title: the file says 'Docs, please', the board says " \
           "'Write the docs'" in stale.stdout  # fmt: skip
    assert f"applied  {ids[0]}  assignee: '' -> 'bo'" in stale.stdout
    assert path.read_text() == before  # neither side lost: the file keeps the refused edit
    assert (await load_task(store, ids[1])).title == "Write the docs"
    assert (await load_task(store, ids[0])).assignee == "bo"


async def test_new_rows_become_tasks_once_and_write_exports_again(
    server: EmbeddedServer, keys: Keys, store: EventStore, tmp_path: Path, projector: None
) -> None:
    spec = TaskSpec.model_validate({"project": "acme", "title": "Base", "task_type": "chore",
                                    "priority": 1})  # fmt: skip
    base = (await create_task(store, spec, actor="t")).id
    await board_shows(store, keys, [base])
    path = tmp_path / "TASKS.md"
    assert cairn(server, keys, "tasks-md", "export", "--project", "acme", "--out",
                 str(path)).returncode == 0  # fmt: skip
    text = path.read_text().replace("\n\n<!--", f"\n|  | backlog | Follow up | cy | {base} |"
                                                "\n\n<!--", 1)  # fmt: skip
    path.write_text(text)
    first = cairn(server, keys, "tasks-md", "sync", str(path))
    assert first.returncode == 0 and "created  task-" in first.stdout, first.stdout
    # In a thread: the projector runs on this event loop, and --write waits for the board.
    again = await asyncio.to_thread(cairn, server, keys, "tasks-md", "sync", str(path), "--write")
    assert again.returncode == 0 and "exists   task-" in again.stdout, again.stdout
    new_id = first.stdout.split("created  ")[1].split()[0]
    created = await load_task(store, new_id)
    assert (created.title, created.assignee, created.blocked_by) == ("Follow up", "cy", [base])
    rewritten = path.read_text()
    assert f"| {new_id} | backlog | Follow up | cy | {base} |" in rewritten
    bad = cairn(server, keys, "tasks-md", "sync", str(tmp_path / "missing.md"))
    assert bad.returncode == 2 and "missing.md" in bad.stderr
