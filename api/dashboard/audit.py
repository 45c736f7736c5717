"""Audit (`/audit`): the event log, newest first, filtered by type glob, aggregate and
project, each event's whole envelope readable; live through `/live?scope=audit`. It reads the
partition logs (the log is what it shows) and the read models for each aggregate's project."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.audit import partitions_of
from cairn.api.context import context, event_view
from cairn.api.dashboard.render import page_for, render, templates
from cairn.api.roles import AUDITOR
from cairn.streams.envelope import Envelope, decode_entry, position_key, text
from cairn.streams.store import log_ends

PAGE = 100
SCAN = 5_000  # log entries looked at for one filtered page, at most
_ENTRY = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")
_GLOB = re.compile(r"[A-Za-z0-9_.*?\[\]!-]{1,100}")


@dataclass(frozen=True, slots=True)
class AuditFilter:
    partitions: list[int]
    type_glob: str
    aggregate: str
    project: str
    projects: Callable[[list[str]], Awaitable[dict[str, str]]]

    def matches(self, event: Envelope) -> bool:
        if self.aggregate and event.agg != self.aggregate:
            return False
        return not self.type_glob or fnmatch.fnmatchcase(event.type, self.type_glob)

    async def select(self, events: list[tuple[int, Envelope]]) -> list[tuple[int, Envelope]]:
        """The events that match, the project one included (looked up in the read models)."""
        kept = [(p, e) for p, e in events if self.matches(e)]
        if not self.project or not kept:
            return kept
        owners = await self.projects([e.agg for _, e in kept])
        return [(p, e) for p, e in kept if _project_of(e, owners) == self.project]


def _project_of(event: Envelope, owners: dict[str, str]) -> str:
    return owners.get(event.agg) or str(event.data.get("project") or "")


def audit_filter(request: Request) -> AuditFilter:
    ctx = context(request)
    keys = ctx.keys
    query = request.query_params
    type_glob = query.get("type", "").strip()
    type_glob = type_glob if _GLOB.fullmatch(type_glob) else ""
    aggregate = query.get("aggregate", "").strip()
    aggregate = aggregate if keys.is_aggregate_id(aggregate) else ""
    project = query.get("project", "").strip()[:100]
    partitions = partitions_of(keys, aggregate, project)

    async def projects(ids: list[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(ids))
        tasks = await ctx.board.get_tasks([i for i in wanted if i.startswith("task-")])
        jobs = await ctx.queue.get_jobs([i for i in wanted if i.startswith("job-")])
        owners = {i: t.project for i, t in tasks.items()}
        return owners | {i: j.project for i, j in jobs.items()}

    return AuditFilter(partitions, type_glob, aggregate, project, projects)


def render_row(partition: int, event: Envelope) -> str:
    template = templates.get_template("_audit_row.html")
    return template.render(e=event_view(event), agg=event.agg, partition=partition)


async def read_page(
    request: Request, found: AuditFilter, before: str | None
) -> tuple[list[tuple[int, Envelope]], str | None, int]:
    """Up to PAGE matching events older than log position `before` (newest first, merged
    across partitions), the position the next page starts below (None at the log's start),
    and how many log entries were looked at (at most SCAN)."""
    ctx = context(request)
    upper: dict[int, str | None] = dict.fromkeys(found.partitions, before)
    buffers: dict[int, list[Envelope]] = {p: [] for p in found.partitions}
    ended: set[int] = set()
    matched: list[tuple[int, Envelope]] = []
    scanned, cursor = 0, before
    while len(matched) < PAGE and scanned < SCAN:
        empty = [p for p in found.partitions if not buffers[p] and p not in ended]
        if empty:
            async with ctx.client.pipeline(transaction=False) as pipe:
                for p in empty:
                    high = f"({upper[p]}" if upper[p] else "+"
                    pipe.xrevrange(ctx.keys.log(p), max=high, min="-", count=PAGE)
                for p, entries in zip(empty, await pipe.execute(), strict=True):
                    buffers[p] = [decode_entry(i, f) for i, f in entries]
                    if len(entries) < PAGE:
                        ended.add(p)
                    if entries:
                        upper[p] = text(entries[-1][0])
        if not any(buffers.values()):
            return matched, None, scanned
        # The newest heads first, until a buffer runs dry (it is refilled before going on).
        taken: list[tuple[int, Envelope]] = []
        while len(taken) < PAGE and all(buffers[p] or p in ended for p in found.partitions):
            heads = [p for p in found.partitions if buffers[p]]
            if not heads:
                break
            p = max(heads, key=lambda q: position_key(buffers[q][0].position))
            taken.append((p, buffers[p].pop(0)))
        scanned += len(taken)
        for p, e in await found.select(taken):
            matched.append((p, e))
            if len(matched) == PAGE:
                return matched, e.position, scanned
        if taken:
            cursor = taken[-1][1].position
    return matched, cursor, scanned


async def _newest(request: Request, partitions: list[int]) -> str | None:
    """The newest entry id of the logs read, taken before they are: the live rows go on from
    it, so nothing written while the page is made is missed (a repeat is dropped by id)."""
    ctx = context(request)
    ends = await log_ends(ctx.client, ctx.keys, partitions)
    ids = [end for end in ends.values() if end != "0-0"]
    return max(ids, key=position_key) if ids else "0-0"


@page_for(AUDITOR)  # as GET /api/v2/tasks/{id}/events: the log
async def audit_page(request: Request) -> Response:
    found = audit_filter(request)
    before = request.query_params.get("before", "")
    before_at = before if _ENTRY.fullmatch(before) else None
    newest = await _newest(request, found.partitions) if before_at is None else None
    events, cursor, scanned = await read_page(request, found, before_at)
    query = {k: v for k, v in (("type", found.type_glob), ("aggregate", found.aggregate),
                               ("project", found.project)) if v}  # fmt: skip
    rows = [render_row(p, e) for p, e in events]
    page_data: dict[str, Any] = {
        "rows": rows, "cursor": cursor, "scanned": scanned, "query": query,
        "first": before_at is None, "filters": found, "newest": newest,
    }  # fmt: skip
    return await render(request, "audit.html", page_data)
