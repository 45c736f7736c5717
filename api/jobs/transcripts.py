"""A job's transcript: what its agent did, as the conversation a person reads (entries of
domain/jobs/transcript.py), a page at a time or as it happens (SSE). A finished step's entries
are its `transcript/step-N.jsonl` artifact; the running step's, the job's output stream (stream
`transcript`), where the worker sends them as they come."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cairn.api.context import json_response, path_id, read_query
from cairn.api.jobs.queue import _job_or_404
from cairn.api.jobs.runs import ENTRY, artifacts_of, output_events, output_of
from cairn.api.jobs.runs import TRANSCRIPT as STREAM
from cairn.api.roles import VIEWER
from cairn.api.schemas import ref
from cairn.domain.errors import NotFound, ValidationFailed
from cairn.domain.jobs.job import TERMINAL, Job
from cairn.domain.jobs.transcript import TranscriptEntry, after, decode, to_dict
from cairn.streams.artifacts import FileArtifactStore
from cairn.streams.output import OutputEntry, OutputStream

CURSOR = r"^[0-9]{1,6}\.-?[0-9]{1,9}$"


class TranscriptQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    step: int | None = Field(default=None, ge=1, le=10_000, description="one step's entries")
    after: str | None = Field(default=None, pattern=CURSOR,
                              description="entries after this cursor (`<step>.<seq>`)")
    limit: int = Field(default=500, ge=1, le=2000)


class TranscriptStreamQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    after: str = Field(default="0-0", pattern=ENTRY, description="or the Last-Event-ID header")


def artifact_path(job: Job, step: int) -> str:
    return f"attempt-{job.attempt}/transcript/step-{step}.jsonl"


async def read_transcript(artifacts: FileArtifactStore, output: OutputStream, job: Job,
                          step: int | None = None) -> list[TranscriptEntry]:  # fmt: skip
    """The entries of the job's latest attempt, in order (of one step with `step`): a step's
    artifact once it has one, else what the output stream holds of it."""
    steps = [s["index"] for s in job.steps if step is None or s["index"] == step]
    entries: list[TranscriptEntry] = []
    live: dict[int, list[TranscriptEntry]] | None = None
    for index in steps:
        stored = _stored(artifacts, job, index)
        if stored is None:
            if live is None:
                live = await _live(output, job.id, job.attempt)
            stored = live.get(index, [])
        entries += stored
    return entries


def _stored(artifacts: FileArtifactStore, job: Job, step: int) -> list[TranscriptEntry] | None:
    recorded = any(a.get("path") == artifact_path(job, step) for a in job.artifacts)
    if not recorded:
        return None
    try:
        path = artifacts.open(job.id, artifact_path(job, step))
        lines = path.read_bytes().splitlines()
    except (NotFound, OSError):
        return None
    return [entry for line in lines if (entry := _entry(line)) is not None]


async def _live(output: OutputStream, job_id: str, attempt: int
                ) -> dict[int, list[TranscriptEntry]]:  # fmt: skip
    found: dict[int, list[TranscriptEntry]] = {}
    position = "0-0"
    while page := await output.read(job_id, position, count=1000):
        position = page[-1].id
        for item in page:
            entry = _entry(item.text) if item.stream == STREAM else None
            if entry is not None and entry.attempt in (0, attempt):  # this attempt's only
                found.setdefault(entry.step, []).append(entry)
    return found


def _entry(line: bytes | str) -> TranscriptEntry | None:
    try:
        return decode(line)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None  # a line no Cairn wrote: not shown


async def get_transcript(request: Request) -> Response:
    """The transcript of the job's latest attempt after a cursor (`<step>.<seq>`), of every
    step or of one; `next` is the cursor to read on from."""
    job_id = path_id(request, "job")
    query = read_query(request, TranscriptQuery)
    job = await _job_or_404(request, job_id)
    try:
        since = after(query.after)
    except ValueError as e:
        raise ValidationFailed(str(e), [{"path": "after", "reason": str(e)}]) from e
    entries = await read_transcript(artifacts_of(request), output_of(request), job, query.step)
    fresh = [e for e in entries if (e.step, e.seq) > since][: query.limit]
    last = fresh[-1] if fresh else None
    return json_response({
        "items": [to_dict(e) for e in fresh],
        "next": f"{last.step}.{last.seq}" if last else query.after,
        "running": job.status not in TERMINAL,
    })  # fmt: skip


async def stream_transcript(request: Request) -> Response:
    """Server-sent events: each transcript entry as the worker sends it (event `entry`, its id
    the output stream's, for Last-Event-ID), from the start of the job's live output or after
    `after`; `end` once the job finished and all is sent."""
    query = read_query(request, TranscriptStreamQuery)
    return await output_events(request, query.after, _sse)


def _sse(item: OutputEntry) -> bytes | None:
    if item.stream != STREAM or (entry := _entry(item.text)) is None:
        return None
    data = orjson.dumps(to_dict(entry))
    return f"id: {item.id}\nevent: entry\ndata: ".encode() + data + b"\n\n"


def entry_view(entry: TranscriptEntry) -> dict[str, Any]:
    return to_dict(entry)


JOB = "/api/queue/jobs/{job_id}"
QUERIES: dict[str, type[BaseModel]] = {
    "get_transcript": TranscriptQuery,
    "stream_transcript": TranscriptStreamQuery,
}
RESPONSES: dict[str, dict[str, Any]] = {
    "get_transcript": {"200": ref("Transcript")},
    "stream_transcript": {"200": "text/event-stream"},
}
ROUTES = [
    Route(JOB + "/transcript", get_transcript, methods=["GET"]),
    Route(JOB + "/transcript/stream", stream_transcript, methods=["GET"]),
]
ROLES: dict[str, str] = {"get_transcript": VIEWER, "stream_transcript": VIEWER}
