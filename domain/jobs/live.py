"""Live sessions on a running job: a person watches its terminal, or takes it over (a shell in
the job's sandbox while the agent is held) and hands it back. Each session opens and ends as an
event of the job, so its audit trail says who looked, who typed, for how long and why it ended.
The terminal itself flows through the store, not the log (streams/live.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cairn.domain.errors import InvalidTransition, NotAllowed, NotFound, ValidationFailed
from cairn.domain.jobs.events import JobEvent, JobLiveSessionEnded, JobLiveSessionOpened
from cairn.domain.jobs.job import Job, JobStatus

MODES = ("watch", "takeover")
WHY = ("closed", "handed_back", "ttl", "idle", "job_ended", "worker_lost", "worker_busy",
       "failed")  # failed: the worker could not open it (its log says why)
TTL_MIN_S = 10
SESSIONS_PER_JOB = 60  # open at once on one job
NOTE_MAX = 4_000


def decide_open(job: Job, *, session_id: str, mode: str, actor: str, ttl_s: int,
                max_ttl_s: int, now: datetime) -> list[JobEvent]:  # fmt: skip
    """A session on a running job, for at most `max_ttl_s` (a longer one asked for is cut to
    it); one takeover at a time."""
    if mode not in MODES:
        reason = f"one of {', '.join(MODES)}"
        raise ValidationFailed(f"mode: {reason}", [{"path": "mode", "reason": reason}])
    if ttl_s < TTL_MIN_S:
        reason = f"at least {TTL_MIN_S} seconds"
        raise ValidationFailed(f"ttl_s: {reason}", [{"path": "ttl_s", "reason": reason}])
    if job.status != JobStatus.RUNNING:
        raise InvalidTransition(f"job {job.id} is {job.status}; a live session needs a running "
                                "job (its worker serves the terminal)", job_status=job.status,
                                allowed_statuses=[JobStatus.RUNNING.value])  # fmt: skip
    if len(job.live_sessions) >= SESSIONS_PER_JOB:
        raise InvalidTransition(f"job {job.id} has {len(job.live_sessions)} live sessions open, "
                                "the most it takes", limit=SESSIONS_PER_JOB)  # fmt: skip
    taken = takeover_of(job)
    if mode == "takeover" and taken is not None:
        raise InvalidTransition(
            f"job {job.id} is taken over by {taken['actor']} (session {taken['session_id']}) "
            f"until {taken['expires_at']}: one takeover at a time; watch it meanwhile",
            session_id=taken["session_id"])  # fmt: skip
    ttl = min(ttl_s, max_ttl_s)
    expires = (now + timedelta(seconds=ttl)).isoformat().replace("+00:00", "Z")
    return [JobLiveSessionOpened(session_id=session_id, mode=mode, actor=actor, ttl_s=ttl,
                                 expires_at=expires)]  # fmt: skip


def decide_end(job: Job, session_id: str, why: str, *, actor: str | None = None,
               admin: bool = False, note: str | None = None, duration_s: float | None = None,
               recording: dict[str, Any] | None = None, now: datetime | None = None
               ) -> list[JobEvent]:  # fmt: skip
    """End a session; one already ended: nothing (a close and a TTL may cross). A person
    (`actor`) ends only their own session, unless an admin."""
    if why not in WHY:
        raise ValueError(f"not a reason a session ends: {why!r}")
    found = session_of(job, session_id)
    if found is None:
        if any(s["session_id"] == session_id for s in job.live_ended):
            return []
        raise NotFound(f"job {job.id} has no live session {session_id}", session_id=session_id)
    if actor is not None and actor != found["actor"] and not admin:
        raise NotAllowed(f"session {session_id} is {found['actor']}'s: only they (or an admin) "
                         "end it", session_id=session_id)  # fmt: skip
    if duration_s is None and now is not None and found.get("opened_at"):
        duration_s = round((now - _at(str(found["opened_at"]))).total_seconds(), 3)
    if note is not None and len(note) > NOTE_MAX:
        reason = f"at most {NOTE_MAX} characters"
        raise ValidationFailed(f"note: {reason}", [{"path": "note", "reason": reason}])
    return [JobLiveSessionEnded(session_id=session_id, why=why, actor=actor, note=note,
                                duration_s=duration_s, recording=recording)]  # fmt: skip


def decide_hand_back(job: Job, session_id: str, *, actor: str, note: str, admin: bool = False,
                     now: datetime | None = None) -> list[JobEvent]:  # fmt: skip
    """The person who took the job over gives it back (an admin may too)."""
    found = session_of(job, session_id)
    if found is not None and found["mode"] != "takeover":
        raise InvalidTransition(f"session {session_id} watches; only a takeover is handed back",
                                session_id=session_id)  # fmt: skip
    return decide_end(job, session_id, "handed_back", actor=actor, admin=admin,
                      note=note.strip() or None, now=now)  # fmt: skip


def end_all(job: Job, why: str) -> list[JobEvent]:
    """Every open session of the job ends (it ended, or its worker was lost)."""
    return [JobLiveSessionEnded(session_id=s["session_id"], why=why) for s in job.live_sessions]


def session_of(job: Job, session_id: str) -> dict[str, Any] | None:
    return next((s for s in job.live_sessions if s["session_id"] == session_id), None)


def takeover_of(job: Job) -> dict[str, Any] | None:
    return next((s for s in job.live_sessions if s["mode"] == "takeover"), None)


def past_ttl(job: Job, now: datetime) -> list[dict[str, Any]]:
    """The open sessions whose time is up."""
    return [s for s in job.live_sessions if _at(str(s["expires_at"])) <= now]


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
