"""Submitting work (`/queue/new`): the typed Task form (no JSON to write) that builds the
canonical payload and submits it as POST /api/queue/jobs does, the one-off Quick Action as
POST /api/v2/quick-runs does, and editing a queued job's form (`/queue/{id}/edit`) as
PUT /api/queue/jobs/{id} does. Refusals come back at the fields they name."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import actor, context
from cairn.api.dashboard.render import FieldErrors, Form, action, done, page, render
from cairn.api.dashboard.run_page import job_or_404
from cairn.api.jobs.queue import SubmitBody, UpdateBody, live_capabilities
from cairn.api.jobs.quick_runs import QuickRunBody, quick_run_payload
from cairn.commands.jobs.job import (
    JobRequest,
    promote_quick_run,
    submit_job,
    submit_quick_run,
    update_job,
)
from cairn.domain.errors import CairnError, InvalidTransition, ValidationFailed
from cairn.domain.jobs.job import Job, JobStatus
from cairn.domain.jobs.kinds import AGENT_RUNTIMES, PUBLISH_MODES, RUNTIMES, refusal
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.tasks.spec import parse_model

MAX_STEP_ROWS = 50
STEP_FIELDS = ("id", "title", "instructions", "skill")
EFFORTS = ("low", "medium", "high")
# Error paths (camelCase or snake_case) -> the form's field names.
FIELDS = {
    "payload.repository": "repository", "payload.targetRuntime": "runtime",
    "payload.task.instructions": "instructions", "payload.task.skill.id": "skill",
    "payload.task.skill": "skill", "payload.task.runtime.mode": "runtime",
    "payload.task.runtime.model": "model", "payload.task.runtime.effort": "effort",
    "payload.task.git.startingBranch": "starting_branch",
    "payload.task.git.newBranch": "new_branch", "payload.task.publish.mode": "publish_mode",
    "payload.task.publish.prBaseBranch": "pr_base_branch",
    "payload.task.publish.prTitle": "pr_title", "payload.task.proposeTasks": "propose_tasks",
    "payload.task.steps": "steps", "priority": "priority", "maxAttempts": "max_attempts",
    "project": "project", "prompt": "prompt", "repository": "repository", "runtime": "runtime",
    "model": "model",
}  # fmt: skip
_STEP = re.compile(r"payload\.task\.steps\[(\d+)\]\.(title|instructions|skill)")


def _camel(path: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m[1].upper(), path)


def form_field(path: str) -> str | None:
    path = _camel(path)
    step = _STEP.match(path)
    if step:
        return f"steps-{step[1]}-{step[2]}"
    while path:
        if path in FIELDS:
            return FIELDS[path]
        path = path.rsplit(".", 1)[0] if "." in path else ""
    return None


def payload_from(form: Form) -> dict[str, Any]:
    """The canonical task payload the form describes; blanks are left out (defaults apply)."""
    task: dict[str, Any] = {}
    if form.text("instructions"):
        task["instructions"] = form.get("instructions")
    if form.text("skill") and form.get("skill").strip().lower() != "auto":
        task["skill"] = {"id": form.get("skill").strip()}
    runtime = {k: form.get(k).strip() for k in ("model", "effort") if form.text(k)}
    if runtime:
        task["runtime"] = runtime
    git = _present(form, ("startingBranch", "starting_branch"), ("newBranch", "new_branch"))
    if git:
        task["git"] = git
    publish = _present(form, ("mode", "publish_mode"), ("prBaseBranch", "pr_base_branch"),
                       ("prTitle", "pr_title"))  # fmt: skip
    if publish:
        task["publish"] = publish
    steps = []
    for row in step_rows(form):
        step: dict[str, Any] = {k: v for k, v in row.items() if k != "skill" and v}
        if set(step) == {"id"}:
            continue
        if row["skill"] and row["skill"].lower() != "auto":
            step["skill"] = {"id": row["skill"]}
        if step:
            steps.append(step)
    if steps:
        task["steps"] = steps
    if form.checked("propose_tasks"):
        task["proposeTasks"] = True
    payload: dict[str, Any] = {"task": task}
    if form.text("repository"):
        payload["repository"] = form.get("repository").strip()
    if form.text("runtime"):  # where the API's examples and quick runs put it
        payload["targetRuntime"] = form.get("runtime").strip()
    return payload


def _present(form: Form, *names: tuple[str, str]) -> dict[str, str]:
    """{payload key: value} of the fields (payload key, field name) that were filled."""
    return {key: form.get(name).strip() for key, name in names if form.text(name)}


def step_rows(form: Form) -> list[dict[str, str]]:
    """The steps editor's rows, in order, blank rows included."""
    rows = []
    for i in range(MAX_STEP_ROWS):
        row = {k: form.get(f"steps-{i}-{k}").strip() for k in STEP_FIELDS}
        if not any(f"steps-{i}-{k}" in form.values for k in row):
            break
        rows.append(row)
    return rows


def values_from(payload: dict[str, Any]) -> dict[str, Any]:
    """The form's values for a stored task payload (editing a queued job)."""
    task = payload.get("task") or {}

    def pick(obj: Any, *names: str) -> str:
        for name in names:
            if isinstance(obj, dict) and obj.get(name) not in (None, ""):
                return str(obj[name])
        return ""

    runtime, git, publish = (task.get(k) or {} for k in ("runtime", "git", "publish"))
    steps = [{"id": pick(s, "id"), "title": pick(s, "title"),
              "instructions": pick(s, "instructions"), "skill": pick(s.get("skill") or {}, "id")}
             for s in task.get("steps") or [] if isinstance(s, dict)]  # fmt: skip
    return {
        "instructions": pick(task, "instructions"),
        "skill": pick(task.get("skill") or {}, "id"),
        "runtime": pick(payload, "targetRuntime", "target_runtime") or pick(runtime, "mode"),
        "model": pick(runtime, "model"), "effort": pick(runtime, "effort"),
        "repository": pick(payload, "repository"),
        "starting_branch": pick(git, "startingBranch", "starting_branch"),
        "new_branch": pick(git, "newBranch", "new_branch"),
        "publish_mode": pick(publish, "mode"),
        "pr_base_branch": pick(publish, "prBaseBranch", "pr_base_branch"),
        "pr_title": pick(publish, "prTitle", "pr_title"),
        "propose_tasks": bool(task.get("proposeTasks") or task.get("propose_tasks")),
        "steps": steps,
    }  # fmt: skip


def form_of(values: dict[str, Any]) -> Form:
    """The form a person would send for `values` (what values_from read)."""
    pairs = [(k, str(v)) for k, v in values.items() if k not in ("steps", "propose_tasks") and v]
    if values.get("propose_tasks"):
        pairs.append(("propose_tasks", "on"))
    for i, step in enumerate(values.get("steps") or []):
        pairs += [(f"steps-{i}-{k}", step.get(k, "")) for k in STEP_FIELDS]
    return Form(pairs)


def round_trips(payload: Any) -> bool:
    """Whether the typed form holds all of `payload`: editing it there then loses nothing."""
    if not isinstance(payload, dict):
        return False
    return payload_from(form_of(values_from(payload))) == payload


async def _defaults(request: Request, *, suggest: bool = True) -> dict[str, Any]:
    """The install's defaults, the runtimes a live worker runs now (the runtime preselected is
    one of them: the install's when a worker has it), and whether local paths are taken."""
    contract = context(request).settings.contract()
    workers = await live_capabilities(request)
    live = [r for r in RUNTIMES if any(r in caps for caps in workers)]
    agents = [r for r in live if r in AGENT_RUNTIMES]
    runtime = contract.default_runtime
    suggested = "" if runtime in live or not suggest else (agents or live or [""])[0]
    return {
        "repository": contract.default_repository,
        "runtime": runtime,
        "publish_mode": contract.default_publish_mode,
        "live_runtimes": live,
        "suggested_runtime": suggested,
        "no_agent": not agents,
        "local_repositories": contract.allow_local_repositories,
    }


def _choices() -> dict[str, Any]:
    return {"runtimes": RUNTIMES, "publish_modes": PUBLISH_MODES, "efforts": EFFORTS}


async def _submit_form(
    request: Request, values: dict[str, Any], errors: FieldErrors, quick: dict[str, Any],
    quick_errors: FieldErrors, status: int = 200,
) -> Response:  # fmt: skip
    steps = list(values.get("steps") or [])
    while len(steps) < 1:
        steps.append({"title": "", "instructions": "", "skill": ""})
    page_data = {
        "values": {**values, "steps": steps}, "errors": errors, "quick": quick,
        "quick_errors": quick_errors, "defaults": await _defaults(request), **_choices(),
    }  # fmt: skip
    return await render(request, "submit.html", page_data, status)


def _blank() -> dict[str, Any]:
    return {"priority": "0", "max_attempts": "3", "project": "default", "steps": []}


@page
async def submit_page(request: Request) -> Response:
    return await _submit_form(request, _blank(), FieldErrors(), {"project": "default"},
                              FieldErrors())  # fmt: skip


def _typed_values(form: Form) -> dict[str, Any]:
    values: dict[str, Any] = {name: form.get(name) for name in form.values}
    values["propose_tasks"] = form.checked("propose_tasks")
    values["steps"] = step_rows(form)
    return values


async def _typed_refused(request: Request, form: Form, error: CairnError) -> Response:
    status = error.status if error.status < 500 else 422
    errors = FieldErrors(error, form_field)
    return await _submit_form(request, _typed_values(form), errors, {"project": "default"},
                              FieldErrors(), status)  # fmt: skip


@action(on_error=_typed_refused)
async def submit_typed(request: Request, form: Form) -> Response:
    if form.get("add_step"):  # the steps editor without scripts: one more row, nothing sent
        values = _typed_values(form)
        values["steps"] = [*values["steps"], {"title": "", "instructions": "", "skill": ""}]
        return await _submit_form(request, values, FieldErrors(), {"project": "default"},
                                  FieldErrors())  # fmt: skip
    ctx = context(request)
    payload = payload_from(form)
    body = _every_refusal(
        lambda: parse_model(SubmitBody, {
            "type": "task", "payload": payload, "priority": _number(form.get("priority")),
            "maxAttempts": _number(form.get("max_attempts")),
            "project": form.get("project").strip() or "default",
        }),
        lambda: normalize_job("task", payload, ctx.settings.contract()),
    )
    job = JobRequest(body.type, body.payload, body.priority, body.max_attempts, None, body.project)
    result = await submit_job(ctx.store, job, ctx.settings.contract(), actor=actor(request))
    return done(request, f"/queue/{result.id}?min_position={result.position}", "submitted")


def _every_refusal(parse: Callable[[], SubmitBody], check: Callable[[], object]) -> SubmitBody:
    """The body, or one refusal naming every field at fault: the queue options and the
    payload (as submit_job will normalize it) are checked side by side, not one after the
    other, so a form shows all its errors at once."""
    errors: list[dict[str, str]] = []
    body = None
    try:
        body = parse()
    except ValidationFailed as e:
        errors += e.errors
    try:
        check()
    except ValidationFailed as e:
        errors += [x for x in e.errors if x not in errors]
    if errors or body is None:
        raise refusal(errors)
    return body


def _number(value: str) -> int | str:
    value = value.strip()
    return int(value) if re.fullmatch(r"-?[0-9]{1,9}", value) else value


async def _quick_refused(request: Request, form: Form, error: CairnError) -> Response:
    status = error.status if error.status < 500 else 422
    quick: dict[str, Any] = {name: form.get(name) for name in form.values}
    quick["promote"] = form.checked("promote")
    return await _submit_form(request, _blank(), FieldErrors(), quick,
                              FieldErrors(error, form_field), status)  # fmt: skip


@action(on_error=_quick_refused)
async def submit_quick(request: Request, form: Form) -> Response:
    """As POST /api/v2/quick-runs: a one-off run (source quick_action), off the board."""
    data: dict[str, Any] = {"prompt": form.get("prompt"), "promote": form.checked("promote"),
                            "project": form.get("project").strip() or "default"}  # fmt: skip
    for name in ("repository", "runtime", "model"):
        if form.text(name):
            data[name] = form.get(name).strip()
    body = parse_model(QuickRunBody, data)
    payload = quick_run_payload(body)
    ctx = context(request)
    result = await submit_quick_run(
        ctx.store, JobRequest("task", payload, project=body.project), body.prompt,
        ctx.settings.contract(), actor=actor(request),
    )  # fmt: skip
    if body.promote:
        result, _ = await promote_quick_run(ctx.store, result.id, actor=actor(request))
    return done(request, f"/queue/{result.id}?min_position={result.position}", "submitted")


# ---- edit a queued job -----------------------------------------------------------------------


def _typed(job: Any) -> bool:
    return bool(job.submitted_type == "task" and round_trips(job.payload))


async def _edit_form(
    request: Request, job: Job, values: dict[str, Any], errors: FieldErrors, status: int = 200
) -> Response:
    steps = list(values.get("steps") or []) or [{"title": "", "instructions": "", "skill": ""}]
    page_data = {"job": job, "values": {**values, "steps": steps}, "errors": errors,
                 "defaults": await _defaults(request, suggest=False), "typed": _typed(job),
                 **_choices()}  # fmt: skip
    return await render(request, "job_edit.html", page_data, status)


@page
async def edit_page(request: Request) -> Response:
    job = await job_or_404(request)
    values = values_from(job.payload) if isinstance(job.payload, dict) else {}
    values.update(priority=str(job.priority), max_attempts=str(job.max_attempts),
                  expected_version=str(job.version))  # fmt: skip
    return await _edit_form(request, job, values, FieldErrors())


async def _edit_refused(request: Request, form: Form, error: CairnError) -> Response:
    status = error.status if error.status < 500 else 422
    job = await job_or_404(request)
    return await _edit_form(request, job, _typed_values(form), FieldErrors(error, form_field),
                            status)  # fmt: skip


@action(on_error=_edit_refused)
async def edit_job(request: Request, form: Form) -> Response:
    job = await job_or_404(request)
    if job.status != JobStatus.QUEUED:
        raise InvalidTransition(
            f"job {job.id} is {job.status}; only a queued job can be changed",
            job_status=job.status, allowed_statuses=[JobStatus.QUEUED.value],
        )  # fmt: skip
    if form.get("add_step"):
        values = _typed_values(form)
        values["steps"] = [*values["steps"], {"title": "", "instructions": "", "skill": ""}]
        return await _edit_form(request, job, values, FieldErrors())
    data: dict[str, Any] = {
        "expectedVersion": _number(form.get("expected_version")),
        "priority": _number(form.get("priority")),
        "maxAttempts": _number(form.get("max_attempts")),
    }
    if _typed(job):
        data["payload"] = payload_from(form)
    body = parse_model(UpdateBody, data)
    changes = body.model_dump(exclude_unset=True, exclude={"expected_version"})
    ctx = context(request)
    result = await update_job(
        ctx.store, job.id, changes, ctx.settings.contract(), actor=actor(request),
        expected_version=body.expected_version,
    )  # fmt: skip
    return done(request, f"/queue/{job.id}?min_position={result.position}", "saved")
