"""Live sessions' commands (domain/jobs/live.py): open one on a running job, close it, hand a
takeover back. They leave the job's status as it is; the worker serving the job follows them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from cairn.commands.jobs.job import load_job
from cairn.commands.runner import CommandResult, Plan, run_command, writes
from cairn.domain.jobs.events import JobEvent
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.live import decide_end, decide_hand_back, decide_open
from cairn.streams.store import EventStore, Meta


async def open_session(store: EventStore, job_id: str, *, session_id: str, mode: str,
                       actor: str, ttl_s: int, max_ttl_s: int
                       ) -> tuple[CommandResult, Job]:  # fmt: skip
    """The session opened, and the job as it was read (its worker, the session's time)."""
    read: list[Job] = []

    def decide(job: Job) -> list[JobEvent]:
        read[:] = [job]
        return decide_open(job, session_id=session_id, mode=mode, actor=actor, ttl_s=ttl_s,
                           max_ttl_s=max_ttl_s, now=datetime.now(UTC))  # fmt: skip

    return await _write(store, job_id, actor, decide), read[0]


async def close_session(store: EventStore, job_id: str, session_id: str, *, actor: str,
                        admin: bool = False) -> CommandResult:  # fmt: skip
    """A person closes their session (an admin, anyone's)."""
    return await _write(store, job_id, actor, lambda job: decide_end(
        job, session_id, "closed", actor=actor, admin=admin, now=datetime.now(UTC)))


async def hand_back(store: EventStore, job_id: str, session_id: str, *, actor: str, note: str,
                    admin: bool = False) -> CommandResult:  # fmt: skip
    return await _write(store, job_id, actor, lambda job: decide_hand_back(
        job, session_id, actor=actor, note=note, admin=admin, now=datetime.now(UTC)))


async def _write(store: EventStore, job_id: str, actor: str,
                 decide: Callable[[Job], list[JobEvent]]) -> CommandResult:  # fmt: skip
    async def plan() -> Plan:
        job = await load_job(store, job_id)
        events = decide(job)
        return Plan(writes=writes({job_id: [*events]}, {job_id: job.version}),
                    subject_version=job.version)  # fmt: skip

    return await run_command(store, job_id, plan, meta=Meta(actor=actor))
