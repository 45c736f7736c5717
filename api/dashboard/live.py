"""`/live`: server-sent events that tell an open page its data changed. It tails the partition
logs the page's scope lives in (a blocking XREAD, as the job events stream does) and sends one
`change` per batch (per event for the audit and run pages) with the log position, which the page
passes back as `min_position` so its refresh shows the change."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from cairn.api.context import context, is_id_of
from cairn.api.dashboard.audit import audit_filter, render_row
from cairn.api.dashboard.render import stream_for
from cairn.api.problems import problem
from cairn.api.roles import AUDITOR, VIEWER, allows
from cairn.domain.orchestrator.runs import PROJECT as ORCHESTRATOR
from cairn.streams.envelope import Envelope, decode_entry, text
from cairn.streams.store import log_ends

BLOCK_MS = 4_000  # one blocking read: under the client's read timeout (redis-py's 5 s default)
KEEP_ALIVE_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
BATCH = 500
_ENTRY = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")
EventFilter = Callable[[Envelope], bool]
RowRenderer = Callable[[int, Envelope], str]
Selector = Callable[[list[tuple[int, Envelope]]], Awaitable[list[tuple[int, Envelope]]]]


@dataclass(frozen=True, slots=True)
class Scope:
    partitions: list[int]
    wanted: EventFilter
    each: bool = False  # one message an event (else one a batch)
    row: RowRenderer | None = None  # the audit page's row, rendered here
    select: Selector | None = None  # a last, batched look (the audit's project filter)


def scope_of(request: Request) -> Scope | None:
    ctx = context(request)
    keys = ctx.keys
    query = request.query_params
    name = query.get("scope", "")
    project = query.get("project") or None
    every = list(keys.all_partitions())
    if name == "board":
        return Scope([keys.partition_of(project or "default")], _kind("task"))
    if name == "queue":
        return Scope([keys.partition_of(project)] if project else every, _kind("job"))
    if name == "orchestrator":  # the runs and the service catalog share one partition
        return Scope([keys.partition_of(ORCHESTRATOR)], _kind("orun", "svc"))
    if name in ("job", "task", "orun"):  # a task's or a run's page follows its jobs too
        aggregate = query.get("id", "")
        if not is_id_of(keys, name, aggregate):
            return None
        related: EventFilter = (
            (lambda e: e.agg == aggregate) if name == "job"
            else (lambda e: e.agg == aggregate or e.agg.startswith("job-"))
        )  # fmt: skip
        return Scope([keys.partition_of_id(aggregate)], related, each=name == "job")
    if name == "audit":
        found = audit_filter(request)
        return Scope(found.partitions, found.matches, True, render_row, found.select)
    return None


def _kind(*kinds: str) -> EventFilter:
    prefixes = tuple(kind + "-" for kind in kinds)
    return lambda e: e.agg.startswith(prefixes)


@stream_for(AUDITOR)  # the audit scope is the log; every other scope needs a viewer
async def live_events(request: Request) -> Response:
    scope = scope_of(request)
    if scope is None:
        return Response("unknown scope", 404, media_type="text/plain")
    role = request.scope.get("state", {}).get("role")
    if request.query_params.get("scope") != "audit" and not allows(role, VIEWER):
        return problem(403, "forbidden", "live pages of read models need the viewer role",
                       request.url.path)  # fmt: skip
    ctx = context(request)
    since = request.query_params.get("since", "")
    if _ENTRY.fullmatch(since):  # the page shows the log up to here (the audit page)
        positions = dict.fromkeys(scope.partitions, since)
        hello: dict[int, str] = {}
    else:
        positions = await log_ends(ctx.client, ctx.keys, scope.partitions)
        hello = dict(positions)

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        # The page was rendered from the read models a moment ago, and this stream follows the
        # log from its end now: one refresh that waits for these positions closes the gap.
        for partition, position in hello.items():
            if position != "0-0":
                body = {"type": "stream.opened", "position": f"{partition}:{position}"}
                yield b"event: change\ndata: " + orjson.dumps(body) + b"\n\n"
        quiet_since = time.monotonic()
        while not await request.is_disconnected():
            streams: dict[Any, Any] = {ctx.keys.log(p): at for p, at in positions.items()}
            replies: Any = await ctx.client.xread(streams, count=BATCH, block=BLOCK_MS)
            if not replies:
                if time.monotonic() - quiet_since >= KEEP_ALIVE_S:
                    quiet_since = time.monotonic()
                    yield b": keep-alive\n\n"
                continue
            quiet_since = time.monotonic()
            wanted: list[tuple[int, Envelope]] = []
            for key, entries in replies:
                partition = ctx.keys.partition_of_log(text(key))
                for entry_id, fields in entries:
                    event = decode_entry(entry_id, fields)
                    positions[partition] = event.position
                    if scope.wanted(event):
                        wanted.append((partition, event))
            if scope.select is not None:
                wanted = await scope.select(wanted)
            if scope.each:
                for partition, event in wanted:
                    yield _message(partition, event, scope.row)
            else:
                last = {partition: event for partition, event in wanted}
                for partition, event in last.items():
                    yield _message(partition, event, None)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _message(partition: int, event: Envelope, row: RowRenderer | None) -> bytes:
    body: dict[str, Any] = {
        "type": event.type,
        "agg": event.agg,
        "version": event.ver,
        "position": f"{partition}:{event.position}",
    }
    if row is not None:
        body["html"] = row(partition, event)
    return b"event: change\ndata: " + orjson.dumps(body) + b"\n\n"
