"""Live sessions over HTTP and a WebSocket (decision 0011): open one on a running job (watch:
operator; takeover: admin, or an operator with the `takeover` grant), close it, hand a takeover
back, and attach a terminal with a single-use ticket. The API only relays frames between the
WebSocket and the session's streams in the store; the terminal is the worker's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from cairn.api.context import actor, context, json_response, path_id, read_body
from cairn.api.jobs.queue import _job_or_404, _Wire
from cairn.api.roles import ADMIN, OPERATOR, VIEWER, allows
from cairn.commands.jobs.job import load_job
from cairn.commands.jobs.live import close_session, hand_back, open_session
from cairn.domain.errors import InvalidTransition, NotAllowed, NotFound
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.live import NOTE_MAX, session_of
from cairn.streams.keys import new_ulid
from cairn.streams.live import Frame, LiveChannels
from cairn.streams.registry import Registry

TICKET_S = 60  # a ticket's life: long enough to open a WebSocket, short enough to be useless after
ATTACHED_MAX = 200  # WebSockets one API process relays at once
INPUT_PER_S = 200  # frames a takeover's WebSocket sends a second (more are dropped)
LOOK_S = 2.0  # how often a relay checks the session is still open
_attached = 0


class OpenBody(_Wire):
    mode: Literal["watch", "takeover"]
    ttl_s: int = Field(default=900, ge=10, le=86_400)


class HandBackBody(_Wire):
    note: str = Field(default="", max_length=NOTE_MAX)


def _channels(request: Request | WebSocket) -> LiveChannels:
    ctx = request.app.state.ctx
    return LiveChannels(ctx.client, ctx.keys)


async def post_live_session(request: Request) -> Response:
    """A live session on a running job (201): its id and a ticket for its WebSocket."""
    body: OpenBody = await read_body(request, OpenBody)
    opened = await open_with_ticket(request, path_id(request, "job"), body.mode, body.ttl_s)
    return json_response(opened, 201)


def may_take_over(role: str | None, grants: tuple[str, ...]) -> bool:
    """Whether a caller may take a job over: an admin, or an operator with the takeover grant."""
    return role == ADMIN or (allows(role, OPERATOR) and "takeover" in grants)


async def open_with_ticket(request: Request, job_id: str, mode: str, ttl_s: int
                           ) -> dict[str, Any]:  # fmt: skip
    """Open a session for the request's actor (the API's and the dashboard's): its ticket, the
    WebSocket's path, and until when it is open."""
    state = request.scope.get("state", {})
    if mode == "takeover" and not may_take_over(state.get("role"),
                                                tuple(state.get("grants") or ())):  # fmt: skip
        raise NotAllowed("a takeover needs the admin role, or an operator's token with the "
                         "takeover grant (`cairn token create --grant takeover`)",
                         needed="takeover")  # fmt: skip
    job = await _job_or_404(request, job_id)
    await _served(request, job.worker_id)
    ctx, who, sid = context(request), actor(request), f"ls{new_ulid().lower()}"
    await open_session(ctx.store, job_id, session_id=sid, mode=mode, actor=who,
                       ttl_s=ttl_s, max_ttl_s=ctx.settings.live_session_max_ttl_s)
    opened = await _open_of(request, job_id, sid)
    ticket = await _ticket(request, job_id, sid, who, mode)
    return {**ticket, "expiresAt": opened["expires_at"], "ttlS": opened["ttl_s"]}


def session_view(found: dict[str, Any], job: Job) -> dict[str, Any]:
    """A session as the API shows it; an ended one's recording is the artifact its worker
    stored (named in the end event when the worker ended it)."""
    job_id, sid = job.id, found["session_id"]
    recording = found.get("recording") or next(
        ({"path": a["path"], "sha256": a.get("sha256"), "size": a.get("size")}
         for a in job.artifacts if str(a.get("path", "")).endswith(f"live/{sid}.cast")),
        None) if found.get("ended_at") else None  # fmt: skip
    return {
        "sessionId": sid, "mode": found["mode"], "actor": found["actor"],
        "openedAt": found.get("opened_at"), "expiresAt": found.get("expires_at"),
        "endedAt": found.get("ended_at"), "endedBy": found.get("ended_by"),
        "why": found.get("why"), "note": found.get("note"),
        "durationS": found.get("duration_s"),
        "recording": {**recording, "ref": f"/api/queue/jobs/{job_id}/artifacts/"
                      f"{recording['path']}"} if recording else None,
    }  # fmt: skip


async def list_live_sessions(request: Request) -> Response:
    """The job's live sessions: those open (who watches, who has it, until when) and those
    ended (why, how long, their recordings)."""
    job = await _job_or_404(request, path_id(request, "job"))  # the read model, not the stream
    return json_response({"open": [session_view(s, job) for s in job.live_sessions],
                          "ended": [session_view(s, job) for s in job.live_ended]})  # fmt: skip


async def post_ticket(request: Request) -> Response:
    """A new ticket for an open session of the caller's (a reloaded page attaches again)."""
    job_id, sid = path_id(request, "job"), str(request.path_params["sid"])
    return json_response(await renew_ticket(request, job_id, sid), 201)


async def renew_ticket(request: Request, job_id: str, sid: str) -> dict[str, Any]:
    """A new ticket for an open session: the caller's own (an admin's for anyone's)."""
    found = await _open_of(request, job_id, sid)
    who = actor(request)
    if found["actor"] != who and request.scope.get("state", {}).get("role") != ADMIN:
        raise NotAllowed(f"session {sid} is {found['actor']}'s", session_id=sid)
    return await _ticket(request, job_id, sid, who, str(found["mode"]))


async def delete_live_session(request: Request) -> Response:
    job_id, sid = path_id(request, "job"), str(request.path_params["sid"])
    await close_session(context(request).store, job_id, sid, actor=actor(request),
                        admin=_is_admin(request))  # fmt: skip
    return Response(status_code=204)


async def post_hand_back(request: Request) -> Response:
    """A takeover given back with a note: the agent goes on, told what changed."""
    job_id, sid = path_id(request, "job"), str(request.path_params["sid"])
    body: HandBackBody = await read_body(request, HandBackBody)
    await hand_back(context(request).store, job_id, sid, actor=actor(request), note=body.note,
                    admin=_is_admin(request))  # fmt: skip
    return json_response({"sessionId": sid, "handedBack": True})


def _is_admin(request: Request) -> bool:
    return bool(request.scope.get("state", {}).get("role") == ADMIN)


async def worker_serves(request: Request, worker_id: str | None) -> bool:
    """Whether the worker (running the job) says it serves live sessions."""
    ctx = context(request)
    workers = {w["id"]: w for w in await Registry(ctx.client, ctx.keys).workers()}
    record = workers.get(worker_id or "")
    return record is not None and bool(record.get("live_sessions"))


async def _served(request: Request, worker_id: str | None) -> None:
    if not await worker_serves(request, worker_id):
        raise InvalidTransition(
            f"the worker running this job ({worker_id or 'none yet'}) serves no live sessions: "
            "its operator turns them on with CAIRN_LIVE_SESSIONS=true", worker_id=worker_id)


async def _open_of(request: Request, job_id: str, sid: str) -> dict[str, Any]:
    found = session_of(await load_job(context(request).store, job_id), sid)
    if found is None:
        raise NotFound(f"job {job_id} has no open live session {sid}", session_id=sid)
    return found


async def _ticket(request: Request, job_id: str, sid: str, who: str, mode: str
                  ) -> dict[str, Any]:  # fmt: skip
    ticket = secrets.token_urlsafe(32)
    claim = json.dumps({"job": job_id, "session": sid, "actor": who, "mode": mode})
    await _channels(request).issue(ticket, claim, TICKET_S)
    return {"sessionId": sid, "mode": mode, "ticket": ticket,
            "ws": f"/api/queue/jobs/{job_id}/live-sessions/{sid}/ws?ticket={ticket}"}  # fmt: skip


# ---- the WebSocket --------------------------------------------------------------------------


async def live_ws(ws: WebSocket) -> None:
    """Attach to a session: its ticket once, the dashboard's origin, then frames both ways."""
    global _attached
    job_id, sid = str(ws.path_params["job_id"]), str(ws.path_params["sid"])
    channels = _channels(ws)
    claim_text = await channels.redeem(str(ws.query_params.get("ticket", ""))[:200])
    claim = json.loads(claim_text) if claim_text else {}
    if claim.get("job") != job_id or claim.get("session") != sid:
        await ws.close(code=4403, reason="the ticket is used, expired, or for another session")
        return
    if not _same_origin(ws):
        await ws.close(code=4403, reason="the page's origin is not the dashboard's")
        return
    if _attached >= ATTACHED_MAX:
        await ws.close(code=4429, reason="this API process relays as many sessions as it may")
        return
    _attached += 1
    try:
        await ws.accept()
        await _relay(ws, channels, job_id, sid, claim["mode"] == "takeover")
    finally:
        _attached -= 1


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:
        return True  # not a browser (a browser always says where the page came from)
    host = ws.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


async def _relay(ws: WebSocket, channels: LiveChannels, job_id: str, sid: str, typing: bool
                 ) -> None:  # fmt: skip
    """Both ways until either ends: the session (its end frame), or the browser (a closed tab
    is noticed by reading from it, a watcher's too, whose messages are dropped)."""
    reader = asyncio.create_task(_from_terminal(ws, channels, job_id, sid))
    writer = asyncio.create_task(_to_terminal(ws, channels, job_id, sid, typing))
    try:
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, writer):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # the browser went first
            await ws.close()


async def _from_terminal(ws: WebSocket, channels: LiveChannels, job_id: str, sid: str) -> None:
    """The session's frames to the browser, from the oldest kept; a gap says what was lost.
    Every LOOK_S the queue's read model says whether the session is still open."""
    queue = ws.app.state.ctx.queue
    after, seen, looked = "0-0", 0, asyncio.get_running_loop().time()
    while True:
        frames: list[Frame] = await channels.read(job_id, sid, "out", after, block_ms=1000)
        for frame in frames:
            after = frame.id
            if frame.kind == "e":
                await ws.send_text(f"\r\n[cairn: the session ended: {frame.data}]\r\n")
                return
            if frame.kind != "o":
                continue
            if frame.n > seen + 1 and seen:
                await ws.send_text(f"\r\n[cairn: {frame.n - seen - 1} chunk(s) dropped: this "
                                   "view fell behind]\r\n")  # fmt: skip
            seen = frame.n
            await ws.send_text(frame.data)
        now = asyncio.get_running_loop().time()
        if now - looked > LOOK_S:
            looked = now
            job = (await queue.get_jobs([job_id])).get(job_id)
            if job is not None and session_of(job, sid) is None:
                why = next((s.get("why") for s in job.live_ended if s["session_id"] == sid), "")
                await ws.send_text(f"\r\n[cairn: the session ended: {why or 'closed'}]\r\n")
                return


async def _to_terminal(ws: WebSocket, channels: LiveChannels, job_id: str, sid: str,
                       typing: bool) -> None:  # fmt: skip
    """What the person types (`{"i": text}`) and resizes (`{"r": "COLSxROWS"}`), rate-limited;
    a watcher's messages are read (to notice its end) and dropped."""
    loop = asyncio.get_running_loop()
    window, taken = loop.time(), 0
    while True:
        message = await ws.receive_text()
        if not typing:
            continue
        now = loop.time()
        if now - window >= 1:
            window, taken = now, 0
        taken += 1
        if taken > INPUT_PER_S:
            continue
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            parsed = json.loads(message)
            if isinstance(parsed.get("i"), str):
                await channels.put(job_id, sid, "in", [("i", parsed["i"][:65_536], 0)])
            elif isinstance(parsed.get("r"), str):
                await channels.put(job_id, sid, "in", [("r", parsed["r"][:20], 0)])


SESSION = "/api/queue/jobs/{job_id}/live-sessions/{sid}"
ROUTES = [
    Route("/api/queue/jobs/{job_id}/live-sessions", post_live_session, methods=["POST"]),
    Route("/api/queue/jobs/{job_id}/live-sessions", list_live_sessions, methods=["GET"]),
    Route(SESSION, delete_live_session, methods=["DELETE"]),
    Route(SESSION + "/hand-back", post_hand_back, methods=["POST"]),
    Route(SESSION + "/tickets", post_ticket, methods=["POST"]),
    WebSocketRoute(SESSION + "/ws", live_ws),
]
ROLES: dict[str, str] = {
    "post_live_session": OPERATOR, "delete_live_session": OPERATOR, "post_hand_back": OPERATOR,
    "post_ticket": OPERATOR, "list_live_sessions": VIEWER,
}  # fmt: skip
BODIES: dict[str, type[BaseModel]] = {"post_live_session": OpenBody, "post_hand_back": HandBackBody}
RESPONSES: dict[str, dict[str, Any]] = {
    "post_live_session": {"201": {"type": "object"}}, "post_ticket": {"201": {"type": "object"}},
    "delete_live_session": {"204": {"description": "ended"}},
    "post_hand_back": {"200": {"type": "object"}},
    "list_live_sessions": {"200": {"type": "object"}},
}  # fmt: skip
