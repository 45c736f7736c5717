"""A job's run (`/queue/{id}`): what it runs on and where it is (from the queue read model),
its agent's conversation (its transcript, step by step), its stage and step timeline, live
output, artifacts and patch, its events (as GET /api/queue/jobs/{id}/events reads them), and
the controls: cancel, pause and resume, operator messages, resubmit, edit while queued,
promote a quick action. The output, transcript, artifact and control routes answer through
the API's own handlers and commands."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from cairn.api.context import actor, context, event_view, path_id
from cairn.api.dashboard.board import pr_summary
from cairn.api.dashboard.live_sessions import panel
from cairn.api.dashboard.render import (
    FieldErrors,
    Form,
    action,
    done,
    page,
    render,
    stream,
    wait_for_writes,
)
from cairn.api.dashboard.session import current_session
from cairn.api.jobs import runs, transcripts
from cairn.api.jobs.queue import live_capabilities
from cairn.api.jobs.run_views import artifact_view, publish_view, step_view
from cairn.commands.jobs.job import (
    add_operator_message,
    cancel_job,
    pause_job,
    promote_quick_run,
    resubmit_job,
    resume_job,
)
from cairn.commands.jobs.task_runs import follow_up
from cairn.domain.errors import CairnError, NotFound
from cairn.domain.jobs.controls import MAX_MESSAGE, MESSAGEABLE, PAUSABLE
from cairn.domain.jobs.dispatch import missing_capabilities
from cairn.domain.jobs.followups import MESSAGE_MAX, check_message
from cairn.domain.jobs.job import ACTIVE, RESUBMITTABLE, TERMINAL, Job, JobSource, JobStatus
from cairn.domain.jobs.kinds import AGENT_RUNTIMES
from cairn.domain.jobs.transcript import (
    FileEdit,
    Raw,
    ToolCall,
    ToolResult,
    TranscriptEntry,
    UsageEntry,
    one_line,
)
from cairn.domain.tasks.spec import parse_model
from cairn.projections.jobs.pulls import Pulls
from cairn.projections.jobs.queue import NAME as QUEUE

PATCH_CAP = 200_000  # bytes of a patch shown in the page; the whole file is a download
EVENTS_SHOWN = 500
PATCH_SUFFIXES = (".patch", ".diff")
WHOLE_PATCH = "changes.patch"
STEP_LOGS = "logs/steps/"  # where the worker stores each step's whole log
FOLLOW_UP_SHOWN = 120  # characters of a follow-up's message, on one line


async def job_or_404(request: Request) -> Job:
    job_id = path_id(request, "job")
    job = (await context(request).queue.get_jobs([job_id])).get(job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist", job_id=job_id)
    return job


def facts(job: Job) -> dict[str, Any]:
    """What the job runs on and where it is, from its normalized payload and its state."""
    task = job.normalized.get("task") or {}
    runtime = task.get("runtime") or {}
    return {
        "title": _title(job),
        "runtime": job.normalized.get("targetRuntime") or "",
        "model": runtime.get("model") or "",
        "effort": runtime.get("effort") or "",
        "repository": job.normalized.get("repository") or "",
        "skill": (task.get("skill") or {}).get("id") or "",
        "publish_mode": (task.get("publish") or {}).get("mode") or "",
        "instructions": task.get("instructions") or job.prompt or "",
        "lease_s": round(job.lease_ms / 1000) if job.lease_ms else None,
    }


def _title(job: Job) -> str:
    task = job.normalized.get("task") or {}
    text = str(job.prompt or task.get("title") or task.get("instructions") or "").strip()
    return text.splitlines()[0][:140] if text else f"{job.submitted_type} job"


def failure(job: Job) -> dict[str, Any] | None:
    """Why the job did not succeed, said as plainly when it failed before execution (cloning,
    preparing, no attempts left before a claim) as when it failed during it."""
    outcome = job.outcome or {}
    if job.status == JobStatus.SUCCEEDED:
        return None
    if not outcome or outcome.get("status") == "succeeded":
        if job.status == JobStatus.CANCELLED:
            return {"title": "Cancelled " + _when(job, None), "status": job.cancel_reason or ""}
        return None
    error = outcome.get("error") or {}
    reason = outcome.get("reason") or {}
    attempt = outcome.get("attempt", job.attempt)
    if job.status == JobStatus.QUEUED:
        status = f"Attempt {attempt} of {job.max_attempts} failed; it will be retried."
    elif job.status == JobStatus.DEAD_LETTER:
        why = "" if reason.get("code") == "attempts_exhausted" else f" {reason.get('message', '')}"
        status = f"Dead-lettered: {attempt} of {job.max_attempts} attempts used.{why}"
    else:
        status = "Failed, not retried (the error is not one a retry fixes)."
    return {
        "title": "Failed " + _when(job, outcome.get("stage")),
        "status": status.strip(),
        "code": error.get("code") or reason.get("code") or "",
        "message": error.get("message") or "",
        "log_tail": error.get("log_tail") or "",
        "detail": {k: v for k, v in error.items() if k not in ("code", "message", "log_tail")},
    }


def _when(job: Job, stage: str | None) -> str:
    ran = any(s.get("stage") == "execute" for s in job.stages)
    if stage in (None, "prepare") and not ran:
        return "before execution started" + (f" (in {stage})" if stage else "")
    if stage == "execute" and job.steps:
        last = job.steps[-1]
        name = last.get("title") or last.get("step_id")
        return f"during execution (step {last.get('index')}: {name})"
    return f"in {stage}" if stage else "while running"


async def run_view(request: Request, job: Job) -> dict[str, Any]:
    ctx = context(request)
    session = await current_session(request)
    assert session is not None  # every page's decorator signed it in
    missing = None
    if job.status == JobStatus.QUEUED:  # the registry is read only when it can matter
        missing = missing_capabilities(job.required_capabilities, await live_capabilities(request))
    events = await ctx.store.read_aggregate(job.id)
    artifacts = [artifact_view(a) for a in job.artifacts]
    url = (job.publish or {}).get("pr_url")
    pr = await Pulls(ctx.client, ctx.keys).get(job.project, str(url)) if url else None
    return {
        "job": job,
        "pr": pr_summary(pr) if pr is not None else None,
        "pr_timeline": pr.timeline[-50:] if pr is not None else [],
        "facts": facts(job),
        "failure": failure(job),
        "missing": missing,
        "agent_runtimes": AGENT_RUNTIMES,
        "steps": [step_view(s) for s in job.steps],
        "publish": publish_view(job.publish) if job.publish else None,
        "artifacts": artifacts,
        "patch": _patch(request, job, artifacts),
        "conversation": await conversation(request, job),
        "followed_by": [_follow_up(f) for f in job.followed_by],
        "live": await panel(request, job, session, events),
        "events": [event_view(e) for e in events[-EVENTS_SHOWN:]],
        "event_count": len(events),
        "can_cancel": job.status in (JobStatus.QUEUED, JobStatus.RUNNING),
        "can_pause": job.status in PAUSABLE and not job.paused,
        "can_resume": job.paused and job.status not in TERMINAL,
        "can_message": job.status in MESSAGEABLE,
        "can_resubmit": job.status in RESUBMITTABLE and not job.resubmitted_as,
        "can_edit": job.status == JobStatus.QUEUED,
        "can_promote": job.source == JobSource.QUICK_ACTION and not job.promoted_task_id,
        "can_follow_up": job.job_type == "task" and job.status in TERMINAL
                         and job.normalized.get("targetRuntime") != "shell",
        "terminal": job.status in TERMINAL,
        "max_message": MAX_MESSAGE,
        "max_follow_up": MESSAGE_MAX,
    }


def _patch(request: Request, job: Job, artifacts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest patch artifact's text, cut at PATCH_CAP."""
    found = [a for a in artifacts if str(a["name"]).endswith(PATCH_SUFFIXES)]
    if not found:
        return None
    # The whole change of the latest attempt (the worker's changes.patch), else the last one.
    whole = [a for a in found if a["name"] == WHOLE_PATCH and a["attempt"] == found[-1]["attempt"]]
    latest = (whole or found)[-1]
    try:
        file = runs.artifacts_of(request).open(job.id, latest["path"])
        with file.open("rb") as reader:
            data = reader.read(PATCH_CAP + 1)
    except (CairnError, OSError):
        return {"artifact": latest, "text": None, "cut": False}
    return {
        "artifact": latest,
        "text": data[:PATCH_CAP].decode(errors="replace"),
        "cut": len(data) > PATCH_CAP,
    }


def _follow_up(asked: dict[str, Any]) -> dict[str, str]:
    message = one_line(str(asked.get("message") or ""), FOLLOW_UP_SHOWN)
    return {"job_id": str(asked["job_id"]), "message": message}


async def conversation(request: Request, job: Job) -> list[dict[str, Any]] | None:
    """The latest attempt's transcript by step, as the page reads it; None when it cannot be
    read here."""
    try:
        entries = await transcripts.read_transcript(
            runs.artifacts_of(request), runs.output_of(request), job
        )
    except (CairnError, OSError):
        return None
    by_step: dict[int, list[TranscriptEntry]] = {}
    for entry in entries:
        by_step.setdefault(entry.step, []).append(entry)
    return [step_conversation(step, by_step.get(step["index"], [])) for step in job.steps]


def step_conversation(step: dict[str, Any], entries: list[TranscriptEntry]) -> dict[str, Any]:
    """One step's turns in order, each tool call with its result; the lines its parser did not
    know set apart; its usage (as the step reported it, else as its transcript says)."""
    turns: list[dict[str, Any]] = []
    raw: list[str] = []
    usage = step.get("usage")
    folded: set[int] = set()  # the results shown inside their calls
    for entry in entries:
        if isinstance(entry, Raw):
            raw.append(entry.text)
        elif isinstance(entry, UsageEntry):
            usage = usage or _fields(entry)
        elif not (isinstance(entry, ToolResult) and entry.seq in folded):
            turn = _fields(entry)
            if isinstance(entry, ToolCall):
                result = _result_of(entry, entries, folded)
                turn["result"] = _fields(result) if result else None
            elif isinstance(entry, FileEdit) and entry.hunk:
                turn["diff"] = diff_lines(entry.hunk)
            turns.append(turn)
    return {"step": step_view(step), "turns": turns, "raw": raw, "usage": usage,
            "refused_edits": step.get("refused_edits") or []}  # fmt: skip


def _fields(entry: TranscriptEntry) -> dict[str, Any]:
    """Every field of an entry, its defaults too (the API's view leaves those out)."""
    return {"kind": entry.kind, **msgspec.structs.asdict(entry)}


def _result_of(
    call: ToolCall, entries: list[TranscriptEntry], folded: set[int]
) -> ToolResult | None:
    """The call's result: the one with its call id, else the next one that names none."""
    later = [e for e in entries
             if isinstance(e, ToolResult) and e.seq > call.seq and e.seq not in folded]  # fmt: skip
    same = [e for e in later if call.call_id and e.call_id == call.call_id]
    found = next(iter(same or [e for e in later if e.call_id is None]), None)
    if found is not None:
        folded.add(found.seq)
    return found


def diff_lines(hunk: str) -> list[tuple[str, str]]:
    """A unified diff's lines, each with how it is shown: `add`, `del`, `meta` (each file's
    header before its first hunk, and each hunk's `@@` line) or plain."""
    lines = hunk.splitlines()
    header = any(line.startswith("@@") for line in lines)  # a bare hunk has none
    shown: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith("diff --git "):  # the next file of a whole patch
            header = True
        elif line.startswith("@@"):
            header = False
            shown.append(("meta", line))
            continue
        shown.append(("meta" if header else {"+": "add", "-": "del"}.get(line[:1], ""), line))
    return shown


@page
async def run_page(request: Request) -> Response:
    await wait_for_writes(request, QUEUE)
    job = await job_or_404(request)
    view = await run_view(request, job)
    return await render(request, "run.html", {**view, "errors": FieldErrors(), "form": ""})


async def _refused(request: Request, form: Form, error: CairnError) -> Response:
    job = await job_or_404(request)
    view = await run_view(request, job)
    which = form.get("form") or "controls"
    errors = FieldErrors(error, lambda path: path.split(".")[-1])
    status = error.status if error.status < 500 else 422
    return await render(request, "run.html", {**view, "errors": errors, "form": which}, status)


def _here(job_id: str, position: str) -> str:
    return f"/queue/{job_id}?min_position={position}" if position else f"/queue/{job_id}"


@action(on_error=_refused)
async def cancel(request: Request, form: Form) -> Response:
    """As POST /api/queue/jobs/{id}/cancel."""
    job_id = path_id(request, "job")
    result = await cancel_job(
        context(request).store, job_id, actor=actor(request), reason=form.get("reason")[:2000]
    )
    job = (await context(request).queue.get_jobs([job_id])).get(job_id)
    # A running job is asked to stop; the read model may already show it cancel_requested.
    notice = "cancel_requested" if job and job.status in ACTIVE else "cancelled"
    return done(request, _here(job_id, result.position), notice)


@action(on_error=_refused)
async def resubmit(request: Request, form: Form) -> Response:
    result, new_id = await resubmit_job(
        context(request).store, path_id(request, "job"), actor=actor(request)
    )
    return done(request, _here(new_id, result.position), "resubmitted")


@action(on_error=_refused)
async def control(request: Request, form: Form) -> Response:
    """As POST /api/queue/jobs/{id}/control: pause (with a reason) or resume."""
    job_id = path_id(request, "job")
    store, who = context(request).store, actor(request)
    fields = {"action": form.get("action"), "reason": form.get("reason")}
    body = parse_model(runs.ControlBody, fields)
    if body.action == "pause":
        result = await pause_job(store, job_id, actor=who, reason=body.reason)
    else:
        result = await resume_job(store, job_id, actor=who)
    return done(request, _here(job_id, result.position), "paused" if body.action == "pause"
                else "resumed")  # fmt: skip


@action(on_error=_refused)
async def message(request: Request, form: Form) -> Response:
    """As POST /api/queue/jobs/{id}/operator-messages."""
    job_id = path_id(request, "job")
    result = await add_operator_message(
        context(request).store, job_id, form.get("text"), actor=actor(request)
    )
    return done(request, _here(job_id, result.position) + "#messages", "messaged")


@action(on_error=_refused)
async def follow_up_run(request: Request, form: Form) -> Response:
    """As POST /api/queue/jobs/{id}/follow-ups: the follow-up's page opens."""
    ctx = context(request)
    message = check_message(form.get("message"), "message")
    result, new_id = await follow_up(ctx.store, path_id(request, "job"), message,
                                     ctx.settings.flags, actor=actor(request))  # fmt: skip
    return done(request, _here(new_id, result.position), "followed_up")


@action(on_error=_refused)
async def promote(request: Request, form: Form) -> Response:
    """As POST /api/v2/quick-runs/{id}/promote."""
    job_id = path_id(request, "job")
    result, task_id = await promote_quick_run(
        context(request).store, job_id, actor=actor(request)
    )
    return done(request, f"/tasks/{task_id}?min_position={result.position}", "promoted")


# ---- what the page's scripts read (the API's own handlers, behind the session) ----------------


@stream
async def output(request: Request) -> Response:
    return await runs.get_output(request)


@stream
async def output_stream(request: Request) -> Response:
    return await runs.stream_output(request)


@stream
async def transcript_stream(request: Request) -> Response:
    return await transcripts.stream_transcript(request)


@stream
async def artifact(request: Request) -> Response:
    return await runs.get_artifact(request)


@stream
async def full_log(request: Request) -> Response:
    """The whole log of the job's latest attempt: its step logs from the artifact store (the
    record, each whole up to the artifact cap), else (before any is stored) the live output."""
    job = await job_or_404(request)
    logs = _step_logs(job)
    store = runs.artifacts_of(request)
    reader = runs.output_of(request)

    async def chunks() -> AsyncIterator[bytes]:
        if logs:
            for artifact in logs:
                yield f"== {artifact['name']} ==\n".encode()
                try:
                    with store.open(job.id, artifact["path"]).open("rb") as file:
                        while chunk := file.read(65_536):
                            yield chunk
                except (CairnError, OSError):
                    yield b"(this log is not on this server)\n"
            return
        after = "0-0"
        while entries := await reader.read(job.id, after, count=1000):
            for entry in entries:
                after = entry.id
                yield entry.text.encode()

    return StreamingResponse(
        chunks(), media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{job.id}.log"',
                 "X-Content-Type-Options": "nosniff"},
    )  # fmt: skip


def _step_logs(job: Job) -> list[dict[str, Any]]:
    """The latest attempt's step logs, in step order."""
    views = [artifact_view(a) for a in job.artifacts]
    latest = max((int(a["attempt"]) for a in views), default=0)
    found = [a for a in views if a["attempt"] == latest and str(a["name"]).startswith(STEP_LOGS)]
    return sorted(found, key=lambda a: _natural(str(a["name"])))


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
