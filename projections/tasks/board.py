"""The board read model: every task's current state, columns per project and status ordered
by priority then age, and per-project counts. Queries read it; nothing here folds streams."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec

from cairn.domain.priority import priority_sort_key
from cairn.domain.tasks.events import task_event_from
from cairn.domain.tasks.states import RESOLVED, Status
from cairn.domain.tasks.task import Task, can_become_ready, can_move_to_ready, evolve, unresolved
from cairn.projections import layout
from cairn.projections.generations import Space, current_space, current_spaces
from cairn.projections.projection import documents_by_id, fold_batch
from cairn.projections.writes import Writes
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope, text
from cairn.streams.keys import Keys

NAME = "board"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Task).decode


def card_member(task: Task) -> str:
    """A column member that sorts by priority desc, then created_at asc, then id."""
    return f"{priority_sort_key(task.priority)}|{task.created_at}|{task.id}"


class BoardProjection:
    name = NAME
    kind = "task"

    def documents(self, space: Space) -> str:
        return layout.tasks(space)

    def decode(self, raw: bytes) -> Any:
        return _decode(raw)

    def apply(self, pipe: Writes, space: Space, events: list[Envelope], loaded: Any) -> None:
        before: dict[str, Task] = loaded

        def step(state: Task | None, e: Envelope) -> Task:
            return evolve(state, task_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)

        changed = fold_batch(before, events, self.kind, step)
        if not changed:
            return
        pipe.hset(layout.tasks(space), mapping={i: _encode(t) for i, t in changed.items()})
        # One command per touched column and count, not per task: the batch is what is atomic.
        removed: dict[str, list[str]] = defaultdict(list)
        added: dict[str, dict[str, float]] = defaultdict(dict)
        counts: Counter[tuple[str, str]] = Counter()
        new_projects = set()
        for task_id, new in changed.items():
            old = before.get(task_id)
            if old is not None:
                if (old.project, old.status, card_member(old)) == (
                    new.project, new.status, card_member(new)
                ):  # fmt: skip
                    continue
                removed[layout.column(space, old.project, old.status)].append(card_member(old))
                counts[(old.project, old.status)] -= 1
            else:
                new_projects.add(new.project)
            added[layout.column(space, new.project, new.status)][card_member(new)] = 0
            counts[(new.project, new.status)] += 1
        for key, members in removed.items():
            pipe.zrem(key, *members)
        for key, mapping in added.items():
            pipe.zadd(key, mapping)
        for (project, status), delta in counts.items():
            if delta:
                pipe.hincrby(layout.counts(space, project), status, delta)
        if new_projects:
            pipe.sadd(layout.projects(space), *new_projects)


class Board:
    """Queries over the board read model."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client, self.keys = client, keys

    async def _space(self, partition: int) -> Space:
        return await current_space(self.client, self.keys, NAME, partition)

    async def get_tasks(self, ids: Iterable[str]) -> dict[str, Task]:
        """Tasks by id (unknown ids left out)."""
        return await documents_by_id(self.client, self.keys, BoardProjection(), ids)

    async def project_tasks(self, project: str) -> list[Task]:
        """Every task of a project, each column in card order, columns in state order."""
        space = await self._space(self.keys.partition_of(project))
        async with self.client.pipeline(transaction=False) as pipe:
            for status in Status:
                pipe.zrange(layout.column(space, project, status.value), 0, -1)
            columns = await pipe.execute()
        ids = [text(m).rsplit("|", 1)[1] for column in columns for m in column]
        if not ids:
            return []
        docs = await self.client.hmget(layout.tasks(space), ids)
        return [_decode(d) for d in docs if d is not None]

    async def column_page(
        self, project: str, status: str, after: str | None, limit: int
    ) -> list[tuple[str, Task]]:
        """Up to `limit` cards of one column after cursor member `after`, with their members."""
        space = await self._space(self.keys.partition_of(project))
        low = f"({after}" if after else "-"
        members = await self.client.zrangebylex(
            layout.column(space, project, status), low, "+", start=0, num=limit
        )
        if not members:
            return []
        names = [text(m) for m in members]
        docs = await self.client.hmget(layout.tasks(space), [n.rsplit("|", 1)[1] for n in names])
        return [(n, _decode(d)) for n, d in zip(names, docs, strict=True) if d is not None]

    async def projects(self) -> list[dict[str, Any]]:
        """Every project with its task counts per status, in three round trips."""
        spaces = await current_spaces(self.client, self.keys, NAME, self.keys.all_partitions())
        async with self.client.pipeline(transaction=False) as pipe:
            for space in spaces.values():
                pipe.smembers(layout.projects(space))
            members = await pipe.execute()
        names = [
            (space, text(raw))
            for space, raws in zip(spaces.values(), members, strict=True)
            for raw in sorted(raws)
        ]
        if not names:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for space, name in names:
                pipe.hgetall(layout.counts(space, name))
            all_counts = await pipe.execute()
        result = []
        for (_, name), counts in zip(names, all_counts, strict=True):
            by_status = {s.value: 0 for s in Status}
            by_status.update({text(k): int(v) for k, v in counts.items()})
            result.append({"project": name, "counts": by_status, "total": sum(by_status.values())})
        return sorted(result, key=lambda p: str(p["project"]))


def card(task: Task, tasks: dict[str, Task]) -> dict[str, Any]:
    """A task as the board shows it: blockers with their status, why it is blocked and what
    would unblock it."""
    doc = task_view(task)
    doc["blockers"] = [
        {"id": b, "title": tasks[b].title if b in tasks else None,
         "status": tasks[b].status if b in tasks else "missing",
         "resolved": b in tasks and tasks[b].status in RESOLVED}
        for b in task.blocked_by
    ]  # fmt: skip
    waiting = unresolved(task, tasks)
    doc["waiting_on"] = [w["id"] for w in waiting]
    doc["can_move_to_ready"] = can_move_to_ready(task, tasks)
    if task.status == Status.BLOCKED:
        reason = task.blocked_reason or {"code": "manual", "message": "blocked"}
        if waiting:
            unblock = "finish or cancel " + ", ".join(
                f"{tasks[w['id']].title!r}" if w["id"] in tasks else w["id"] for w in waiting)
        elif _needs_repository(reason):
            unblock = (f"give project {task.project} a repository (`cairn projects set "
                       f"{task.project} --repository PATH-OR-URL`, or Projects in the "
                       "dashboard) or give the task one, then retry it")  # fmt: skip
        elif can_become_ready(task, tasks):
            unblock = "every blocker is resolved: it can now be moved to ready"
        else:
            unblock = "resolve the reason, then move it to ready"
        doc["blocked"] = {"reason": reason, "to_unblock": unblock}
    return doc


def _needs_repository(reason: dict[str, Any]) -> bool:
    """A run refused because nothing names its repository."""
    errors = reason.get("errors")
    return reason.get("code") == "invalid_spec" and isinstance(errors, list) and any(
        isinstance(e, dict) and e.get("path") == "payload.repository" for e in errors)


def task_view(task: Task) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.to_builtins(task)
    return doc
