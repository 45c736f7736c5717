"""A running job's terminal on its page (decision 0011): watch it, take it over, hand it back,
and replay the recordings of its ended sessions. Each action does what the API's live-session
route of the same name does (api/jobs/live.py: the same opening, tickets and commands), behind
the dashboard's session and CSRF token; static/live.js attaches xterm.js to the session's
WebSocket, whose origin check lets this page's origin through."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import actor, context, json_response, path_id
from cairn.api.dashboard.render import Form, action, done, duration, span, stream
from cairn.api.dashboard.session import Session
from cairn.api.jobs import live
from cairn.api.jobs.run_views import artifact_view
from cairn.api.roles import ADMIN, OPERATOR, allows
from cairn.commands.jobs.job import load_job
from cairn.commands.jobs.live import close_session, hand_back
from cairn.domain.jobs.events import JobLiveSessionOpened
from cairn.domain.jobs.job import Job, JobStatus
from cairn.domain.jobs.live import NOTE_MAX, takeover_of
from cairn.domain.tasks.spec import parse_model
from cairn.streams.envelope import Envelope

WHY = {"closed": "closed", "handed_back": "handed back", "ttl": "time ran out",
       "idle": "nobody typed", "job_ended": "the job ended", "worker_lost": "the worker was lost",
       "worker_busy": "the worker serves as many as it may"}  # fmt: skip


async def panel(request: Request, job: Job, session: Session, events: list[Envelope]
                ) -> dict[str, Any]:  # fmt: skip
    """What the run page's terminal panel shows: who may open what, the sessions open (the
    caller's own to attach to again after a reload: a takeover first, else the latest) and
    those ended, with their recordings."""
    running = job.status == JobStatus.RUNNING
    served = running and await live.worker_serves(request, job.worker_id)
    mine = [s for s in job.live_sessions if s["actor"] == session.name]
    mine.sort(key=lambda s: s["mode"] == "takeover")
    # An ended session's record names who ended it (none when its worker did): who opened
    # it is in its opening event.
    openers = {str(e.data.get("session_id")): str(e.data.get("actor"))
               for e in events if e.type == JobLiveSessionOpened.TYPE}  # fmt: skip
    return {
        "shown": served or bool(job.live_sessions) or bool(job.live_ended),
        "running": running,
        "served": served,
        "can_watch": served and allows(session.role, OPERATOR),
        "can_take_over": served and live.may_take_over(session.role, session.grants),
        "takeover": takeover_of(job),
        "mine": mine[-1] if mine else None,
        "open": [view(s, job) for s in job.live_sessions],
        "ended": [view(s, job, openers) for s in reversed(job.live_ended)],
        "note_max": NOTE_MAX,
    }


def view(found: dict[str, Any], job: Job, openers: dict[str, str] | None = None
         ) -> dict[str, Any]:  # fmt: skip
    """As the API shows a session, with who opened it, why it ended and how long it took said
    plainly, and its recording (the artifact `live/<id>.cast`) at the dashboard's route."""
    shown = live.session_view(found, job)
    sid = shown["sessionId"]
    cast = next((artifact_view(a) for a in job.artifacts
                 if a.get("name") == f"live/{sid}.cast"), None)  # fmt: skip
    recorded = shown["recording"] or cast
    if recorded:
        ref = f"/queue/{job.id}/artifacts/{recorded['path']}"
        shown["recording"] = {"path": recorded["path"], "ref": ref}
    shown["openedBy"] = (openers or {}).get(sid) or shown["actor"]
    if shown.get("endedBy") == shown["openedBy"]:
        shown["endedBy"] = None  # "by whom" only when another ended it
    shown["whySaid"] = WHY.get(str(shown["why"] or ""), shown["why"])
    took = shown["durationS"]
    shown["durationSaid"] = (span(float(took)) if isinstance(took, int | float)
                             else duration(shown["openedAt"], shown["endedAt"]))  # fmt: skip
    return shown


@action()
async def open_live(request: Request, form: Form) -> Response:
    """As POST /api/queue/jobs/{id}/live-sessions: the session and its first ticket."""
    fields = {"mode": form.get("mode")} | ({"ttl_s": form.get("ttl_s")} if form.get("ttl_s")
                                           else {})  # fmt: skip
    body = parse_model(live.OpenBody, fields)
    opened = await live.open_with_ticket(request, path_id(request, "job"), body.mode, body.ttl_s)
    return json_response(opened, 201)


@action()
async def ticket(request: Request, form: Form) -> Response:
    """As POST .../live-sessions/{sid}/tickets: a reloaded page attaches again."""
    job_id, sid = path_id(request, "job"), str(request.path_params["sid"])
    return json_response(await live.renew_ticket(request, job_id, sid), 201)


@action()
async def give_back(request: Request, form: Form) -> Response:
    """As POST .../live-sessions/{sid}/hand-back: the agent goes on, told what changed."""
    job_id, sid = path_id(request, "job"), str(request.path_params["sid"])
    body = parse_model(live.HandBackBody, {"note": form.get("note")})
    result = await hand_back(context(request).store, job_id, sid, actor=actor(request),
                             note=body.note, admin=_admin(request))  # fmt: skip
    return done(request, _page(job_id, result.position), "handed_back")


@action()
async def stop(request: Request, form: Form) -> Response:
    """As DELETE .../live-sessions/{sid}: the session ends (a takeover's agent goes on)."""
    job_id, sid = path_id(request, "job"), str(request.path_params["sid"])
    result = await close_session(context(request).store, job_id, sid, actor=actor(request),
                                 admin=_admin(request))  # fmt: skip
    return done(request, _page(job_id, result.position), "session_closed")


def _admin(request: Request) -> bool:
    """A person ends their own sessions; an admin, anyone's."""
    return bool(request.scope.get("state", {}).get("role") == ADMIN)


def _page(job_id: str, position: str) -> str:
    return f"/queue/{job_id}" + (f"?min_position={position}" if position else "")


@stream
async def sessions(request: Request) -> Response:
    """As GET .../live-sessions (the panel polls it): who is watching, who has it, until when."""
    job_id = path_id(request, "job")
    job = await load_job(context(request).store, job_id)
    return json_response({"open": [view(s, job) for s in job.live_sessions],
                          "ended": [view(s, job) for s in job.live_ended]})  # fmt: skip
