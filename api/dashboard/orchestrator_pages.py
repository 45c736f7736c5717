"""Orchestrator runs in the dashboard: the runs newest first, by service and state
(`/orchestrator`, live), a new run (`/orchestrator/new`), and the service catalog
(`/orchestrator/services`), read from the same read models and submitted through the same
command as the API's routes (api/orchestrator/routes.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import actor, context
from cairn.api.dashboard.render import (
    FieldErrors,
    Form,
    action,
    done,
    page,
    page_for,
    render,
    wait_for_writes,
)
from cairn.api.dashboard.session import current_session
from cairn.api.orchestrator.routes import RUNS, SERVICES, RunBody, RunsQuery
from cairn.api.roles import OPERATOR, allows
from cairn.commands.orchestrator.runs import submit_run
from cairn.domain.errors import CairnError, ValidationFailed
from cairn.domain.jobs.kinds import AGENT_RUNTIMES
from cairn.domain.orchestrator.runs import INSTRUCTION_MAX, STATES, Run, RunRequest
from cairn.domain.orchestrator.services import Service
from cairn.domain.tasks.spec import parse_model
from cairn.projections.orchestrator.catalog import Runs, Services

PAGE_SIZE = 50
APPROVALS = [
    ("auto", "auto: applied once planned (a protected service still waits for an operator)"),
    ("required", "required: an operator approves the plan and its diff first"),
]
COMMANDS = (("build", "Build"), ("restart", "Restart"), ("verify", "Verify"))


def first_line(text: str, size: int = 120) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0][:size] if stripped else ""


def approval_text(run: Run) -> str:
    """Who let the run's change go ahead (or stopped it), as the list says it."""
    if run.approved_by:
        return f"approved by {run.approved_by}"
    if run.rejected_by:
        return f"rejected by {run.rejected_by}"
    if not run.needs_approval:
        return "not required"
    return "awaiting" if run.state == "awaiting_approval" else "required"


async def is_operator(request: Request) -> bool:
    session = await current_session(request)
    return session is not None and allows(session.role, OPERATOR)


async def runs_view(request: Request) -> dict[str, Any]:
    """The page's data, or the filters' refusal at their fields."""
    ctx = context(request)
    params = request.query_params
    chosen = {name: params.get(name, "").strip() for name in ("service", "state")}
    cursor = params.get("cursor") or None
    services = await Services(ctx.client, ctx.keys).all()
    view: dict[str, Any] = {
        "chosen": chosen, "cursor": cursor, "states": STATES, "errors": FieldErrors(),
        "services": [s.name for s in services], "operator": await is_operator(request),
        "base_query": urlencode({k: v for k, v in chosen.items() if v}),
    }  # fmt: skip
    data = {k: v for k, v in {**chosen, "cursor": cursor}.items() if v}
    try:
        query = parse_model(RunsQuery, {**data, "limit": PAGE_SIZE}, root="query")
    except ValidationFailed as e:
        errors = FieldErrors(e, lambda path: path.removeprefix("query."))
        return {**view, "errors": errors, "runs": [], "next_cursor": None}
    runs, next_cursor = await Runs(ctx.client, ctx.keys).page(
        service=query.service, state=query.state, after=query.cursor, limit=query.limit)
    rows = [{"run": r, "title": first_line(r.instruction), "approval": approval_text(r)}
            for r in runs]  # fmt: skip
    return {**view, "runs": rows, "next_cursor": next_cursor}


@page  # as GET /api/orchestrator/runs
async def runs_page(request: Request) -> Response:
    await wait_for_writes(request, RUNS)
    view = await runs_view(request)
    return await render(request, "orchestrator.html", view, 422 if view["errors"] else 200)


# ---- a new run ------------------------------------------------------------------------------


async def _new_form(request: Request, values: dict[str, str], errors: FieldErrors,
                    status: int = 200) -> Response:  # fmt: skip
    ctx = context(request)
    services = await Services(ctx.client, ctx.keys).all()
    protected = " (protected: an operator approves every run)"
    options = [(s.name, s.name + (protected if s.spec.get("protected") else ""))
               for s in services]  # fmt: skip
    data = {"values": values, "errors": errors, "services": options, "approvals": APPROVALS,
            "runtimes": [("", "the install's default"), *((r, r) for r in AGENT_RUNTIMES)],
            "instruction_max": INSTRUCTION_MAX}  # fmt: skip
    return await render(request, "orchestrator_new.html", data, status)


@page_for(OPERATOR)  # as POST /api/orchestrator/runs: only an operator submits one
async def new_run_page(request: Request) -> Response:
    values = {"service": request.query_params.get("service", ""), "instruction": "",
              "runtime": "", "approval": "auto"}  # fmt: skip
    return await _new_form(request, values, FieldErrors())


async def _new_refused(request: Request, form: Form, error: CairnError) -> Response:
    values = {name: form.get(name) for name in ("service", "instruction", "runtime", "approval")}
    errors = FieldErrors(error, lambda path: path.split(".")[-1])
    return await _new_form(request, values, errors, error.status if error.status < 500 else 422)


@action(on_error=_new_refused)
async def submit(request: Request, form: Form) -> Response:
    """As POST /api/orchestrator/runs: the run's page opens (it plans first)."""
    data = {"service": form.get("service").strip(), "instruction": form.get("instruction"),
            "approval": form.get("approval") or "auto"}  # fmt: skip
    if form.text("runtime"):
        data["runtime"] = form.get("runtime").strip()
    body = parse_model(RunBody, data)
    ctx = context(request)
    asked = RunRequest(service=body.service, instruction=body.instruction, runtime=body.runtime,
                       approval=body.approval)  # fmt: skip
    result = await submit_run(ctx.store, asked, ctx.settings.contract(), actor=actor(request),
                              approval_timeout_s=ctx.settings.approval_timeout_s)  # fmt: skip
    return done(request, f"/orchestrator/{result.id}?min_position={result.position}",
                "run_submitted")  # fmt: skip


# ---- the catalog ----------------------------------------------------------------------------


def command_view(command: Any) -> dict[str, Any] | None:
    """An operator's command as people read it: what runs (or which URL is checked), and how
    long it may take."""
    if not isinstance(command, dict):
        return None
    http = command.get("http")
    if isinstance(http, dict):
        text = (f"GET {http.get('url')} answers {http.get('expectStatus', 200)}, tried up "
                f"to {http.get('retries', 10)} times within {http.get('windowSeconds', 30)} s")
        return {"text": text, "check": True, "timeout": None}
    return {"text": str(command.get("run", "")), "check": False,
            "timeout": command.get("timeoutSeconds")}  # fmt: skip


def service_view(service: Service) -> dict[str, Any]:
    spec = service.spec
    rollback = spec.get("rollback") or {"mode": "revert"}
    return {
        "service": service, "spec": spec, "allowed": spec.get("allowedPaths", []),
        "commands": [(label, command_view(spec.get(name))) for name, label in COMMANDS],
        "rollback": command_view(rollback) if rollback.get("mode") == "command" else None,
        "check": service.last_check,
    }  # fmt: skip


@page  # as GET /api/orchestrator/services
async def services_page(request: Request) -> Response:
    await wait_for_writes(request, SERVICES)
    ctx = context(request)
    services = await Services(ctx.client, ctx.keys).all()
    data = {"services": [service_view(s) for s in services],
            "operator": await is_operator(request)}  # fmt: skip
    return await render(request, "services.html", data)
