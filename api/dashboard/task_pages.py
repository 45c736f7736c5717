"""A task's pages: the create form (`/tasks/new`), its detail with edit, dependencies, moves
and runs (`/tasks/{id}`, read models only), and its history from the log with the state
after any chosen event (`/tasks/{id}/history`, the one page that reads a task's own events,
as GET /api/v2/tasks/{id}/events does)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import actor, context, event_view, path_id
from cairn.api.dashboard.board import (
    STATUS_NAMES,
    move_targets,
    pr_summary,
    priority_label,
    project_of,
)
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
from cairn.api.roles import AUDITOR
from cairn.api.tasks.routes import CreateBody, PatchBody
from cairn.commands.tasks.task import (
    add_dependency,
    create_task,
    fold_task,
    remove_dependency,
    update_task,
)
from cairn.domain.errors import CairnError, NotFound, ValidationFailed
from cairn.domain.jobs.repositories import check_repository
from cairn.domain.jobs.usage import sum_usage
from cairn.domain.priority import PRIORITY_NAMES
from cairn.domain.tasks.project import ProjectSettings, setting_sources
from cairn.domain.tasks.spec import TaskPatch, TaskSpec, TaskType, parse_model
from cairn.domain.tasks.states import RESOLVED, Status
from cairn.projections.jobs.pulls import Pulls
from cairn.projections.jobs.queue import NAME as QUEUE
from cairn.projections.tasks.board import NAME as BOARD
from cairn.projections.tasks.board import card
from cairn.projections.tasks.projects import Projects

TASK_TYPES = [(t.value, t.value.replace("_", " ")) for t in TaskType]
PRIORITIES = [(str(v), f"{name} ({v})") for name, v in
              sorted(PRIORITY_NAMES.items(), key=lambda kv: -kv[1])]  # fmt: skip
PICKER_CAP = 500  # tasks offered in a blocker picker (newest open ones)


def form_field(path: str) -> str | None:
    """The form field an error path names: its first segment (`blocked_by[0]` -> blocked_by)."""
    return re.split(r"[.\[]", path, maxsplit=1)[0] or None


async def _picker(request: Request, project: str, exclude: set[str]) -> list[dict[str, str]]:
    """Open tasks of the project a new dependency may name (the newest first)."""
    tasks = await context(request).board.project_tasks(project)
    open_tasks = [t for t in tasks if t.status not in RESOLVED and t.id not in exclude]
    open_tasks.sort(key=lambda t: t.created_at, reverse=True)
    return [{"id": t.id, "title": t.title, "status": t.status} for t in open_tasks[:PICKER_CAP]]


# ---- create ----------------------------------------------------------------------------------


@page
async def new_task_page(request: Request) -> Response:
    project = project_of(request)
    values = {"project": project, "priority": "1", "task_type": "feature", "status": "backlog"}
    return await _new_form(request, values, FieldErrors(), 200)


async def _new_form(
    request: Request, values: dict[str, Any], errors: FieldErrors, status: int
) -> Response:
    project = str(values.get("project") or "default")
    picker, settings = await asyncio.gather(_picker(request, project, set()),
                                            _project_settings(request, project))  # fmt: skip
    page_data = {
        "values": values, "errors": errors, "task_types": TASK_TYPES, "priorities": PRIORITIES,
        "picker": picker, "project": project,
        "repository_help": repository_help(request, project, settings),
    }  # fmt: skip
    return await render(request, "task_new.html", page_data, status)


def _create_data(form: Form) -> dict[str, Any]:
    blockers = [*form.getlist("blocked_by"), *form.words("blocked_by_ids")]
    data: dict[str, Any] = {
        "project": form.get("project").strip() or "default",
        "title": form.get("title"),
        "task_type": form.get("task_type"),
        "priority": _priority(form.get("priority")),
        "status": form.get("status") or "backlog",
        "description": form.get("description"),
        "acceptance_criteria": form.lines("acceptance_criteria"),
        "context_files": form.lines("context_files"),
        "blocked_by": list(dict.fromkeys(b for b in blockers if b)),
        "labels": form.words("labels"),
    }
    if form.text("assignee"):
        data["assignee"] = form.get("assignee")
    return data


def _repository(request: Request, form: Form) -> str | None:
    """The form's repository for the task (None: its project's), checked as a job's would
    be, so a wrong one is refused at its field and not when the task runs."""
    given = form.get("repository").strip()
    if not given:
        return None
    allow_local = context(request).settings.execution.allow_local_repositories
    try:
        return check_repository(given, allow_local=allow_local)
    except ValueError as e:
        raise ValidationFailed(f"repository: {e}", [{"path": "repository", "reason": str(e)}]
                               ) from e  # fmt: skip


async def _project_settings(request: Request, project: str) -> ProjectSettings:
    ctx = context(request)
    found = await Projects(ctx.client, ctx.keys).get(project)
    return found.settings if found else ProjectSettings()


def repository_help(request: Request, project: str, settings: ProjectSettings) -> str:
    """What the repository field says: the project's, and the forms this server takes."""
    local = context(request).settings.execution.allow_local_repositories
    forms = "owner/repo, an https:// URL, git@host:path" + (
        " or a local path" if local else "")  # fmt: skip
    if settings.repository:
        own = f"Empty: project {project}'s, {settings.repository}."
    else:
        own = f"Empty: project {project}'s, which has none yet (set it in Projects)."
    return f"{own} Or this task's own: {forms}."


def _priority(value: str) -> int | str:
    value = value.strip()
    return int(value) if re.fullmatch(r"-?[0-9]{1,7}", value) else value


async def _create_refused(request: Request, form: Form, error: CairnError) -> Response:
    values: dict[str, Any] = {name: form.get(name) for name in form.values}
    values["blocked_by"] = form.getlist("blocked_by")
    status = error.status if error.status < 500 else 422
    return await _new_form(request, values, FieldErrors(error, form_field), status)


@action(on_error=_create_refused)
async def create(request: Request, form: Form) -> Response:
    """As POST /api/v2/tasks: the body model, then the command."""
    data = _create_data(form)
    repository = _repository(request, form)
    if repository:
        data["spec"] = {"repository": repository}
    body = parse_model(CreateBody, data)
    spec = TaskSpec.model_validate(body.model_dump(exclude={"force"}))
    result = await create_task(context(request).store, spec, actor=actor(request))
    url = f"/tasks?project={spec.project}&min_position={result.position}#card-{result.id}"
    return done(request, url, "created")


# ---- detail --------------------------------------------------------------------------------


async def task_view(request: Request, task_id: str) -> dict[str, Any]:
    ctx = context(request)
    task = (await ctx.board.get_tasks([task_id])).get(task_id)
    if task is None:
        raise NotFound(f"task {task_id} does not exist", task_id=task_id)
    related, runs, settings = await asyncio.gather(
        ctx.board.get_tasks([*task.blocked_by, *task.blocks, *task.children_ids]),
        ctx.queue.get_jobs(task.run_ids), _project_settings(request, task.project),
    )  # fmt: skip
    view = card(task, related)
    urls = [str(u) for i in reversed(task.run_ids) if i in runs
            and (u := (runs[i].publish or {}).get("pr_url"))]  # fmt: skip
    pr = await Pulls(ctx.client, ctx.keys).get(task.project, urls[0]) if urls else None
    install = {"repository": ctx.settings.default_repository,
               "runtime": ctx.settings.default_runtime,
               "publish_mode": ctx.settings.default_publish_mode}  # fmt: skip
    return {
        "task": view,
        "pr": pr_summary(pr) if pr is not None else None,
        "pr_timeline": pr.timeline[-20:] if pr is not None else [],
        "blocks": [related[i] for i in task.blocks if i in related],
        "runs": [runs[i] for i in reversed(task.run_ids) if i in runs],
        "usage": sum_usage(job.usage for job in runs.values()),
        "run_settings": setting_sources(task.spec, settings, install),
        "repository_help": repository_help(request, task.project, settings),
        "targets": move_targets(task.status, ctx.settings.flags),
        "priority_label": priority_label(task.priority),
        "status_names": STATUS_NAMES,
        "task_types": TASK_TYPES,
        "priorities": PRIORITIES,
        "picker": await _picker(request, task.project, {task.id, *task.blocked_by}),
    }


@page
async def task_page(request: Request) -> Response:
    await wait_for_writes(request, BOARD)
    await wait_for_writes(request, QUEUE)
    view = await task_view(request, path_id(request, "task"))
    return await render(request, "task.html", {**view, "errors": FieldErrors(), "form": "",
                                               "values": _values(view["task"])})  # fmt: skip


def _values(task: dict[str, Any]) -> dict[str, Any]:
    """The edit form's values from the task."""
    return {
        "title": task["title"], "task_type": task["task_type"], "priority": str(task["priority"]),
        "description": task["description"],
        "acceptance_criteria": "\n".join(task["acceptance_criteria"]),
        "context_files": "\n".join(task["context_files"]), "labels": " ".join(task["labels"]),
        "assignee": task["assignee"] or "", "expected_version": str(task["version"]),
        "repository": str((task.get("spec") or {}).get("repository") or ""),
    }  # fmt: skip


async def task_page_with_error(
    request: Request, task_id: str, error: CairnError, form: Form, which: str = "move"
) -> Response:
    """The task's page with a refused form's reasons at its fields (`which` form)."""
    view = await task_view(request, task_id)
    values = _values(view["task"])
    if which == "edit":
        values.update({name: form.get(name) for name in form.values})
    errors = FieldErrors(error, form_field)
    status = error.status if error.status < 500 else 422
    page_data = {**view, "errors": errors, "form": which, "values": values}
    return await render(request, "task.html", page_data, status)


async def _edit_refused(request: Request, form: Form, error: CairnError) -> Response:
    return await task_page_with_error(request, path_id(request, "task"), error, form, "edit")


async def _dependency_refused(request: Request, form: Form, error: CairnError) -> Response:
    task_id = path_id(request, "task")
    return await task_page_with_error(request, task_id, error, form, "dependency")


@action(on_error=_edit_refused)
async def edit(request: Request, form: Form) -> Response:
    """As PATCH /api/v2/tasks/{id}: every field of the form, at the version it was read."""
    task_id = path_id(request, "task")
    data = _create_data(form)
    fields = ("title", "task_type", "priority", "description", "acceptance_criteria",
              "context_files", "labels")  # fmt: skip
    patch_data = {k: data[k] for k in fields}
    patch_data["assignee"] = data.get("assignee")
    repository = _repository(request, form)
    current = (await context(request).board.get_tasks([task_id])).get(task_id)
    spec = dict(current.spec) if current else {}
    if repository != spec.get("repository"):
        spec.pop("repository", None)
        if repository:
            spec["repository"] = repository
        patch_data["spec"] = spec
    version = form.get("expected_version")
    if version.isdigit():
        patch_data["expected_version"] = int(version)
    body = parse_model(PatchBody, patch_data)
    patch = TaskPatch.model_validate(
        body.model_dump(exclude={"expected_version"}, exclude_unset=True)
    )
    result = await update_task(
        context(request).store, task_id, patch, actor=actor(request),
        expected_version=body.expected_version,
    )  # fmt: skip
    return done(request, f"/tasks/{task_id}?min_position={result.position}", "saved")


@action(on_error=_dependency_refused)
async def add_blocker(request: Request, form: Form) -> Response:
    task_id = path_id(request, "task")
    blocker = form.text("blocked_by_id") or form.text("blocked_by")
    if blocker is None:
        reason = "choose a task from the list or give its id"
        raise ValidationFailed(f"blocked_by: {reason}", [{"path": "blocked_by", "reason": reason}])
    result = await add_dependency(
        context(request).store, task_id, blocker, actor=actor(request)
    )
    return done(request, f"/tasks/{task_id}?min_position={result.position}", "dependency_added")


@action(on_error=_dependency_refused)
async def remove_blocker(request: Request, form: Form) -> Response:
    task_id = path_id(request, "task")
    result = await remove_dependency(
        context(request).store, task_id, path_id(request, "task", "dep_id"), actor=actor(request)
    )
    return done(request, f"/tasks/{task_id}?min_position={result.position}", "dependency_removed")


# ---- history -------------------------------------------------------------------------------


@page_for(AUDITOR)  # as GET /api/v2/tasks/{id}/events
async def history_page(request: Request) -> Response:
    """Every event of the task, and its state after the chosen one (`?at=<version>`)."""
    task_id = path_id(request, "task")
    events = await context(request).store.read_aggregate(task_id)
    if not events:
        raise NotFound(f"task {task_id} does not exist", task_id=task_id)
    at_raw = request.query_params.get("at", "")
    at = int(at_raw) if at_raw.isdigit() else len(events)
    at = max(1, min(at, len(events)))
    state = fold_task(events[:at])
    page_data = {
        "task_id": task_id,
        "title": state.title if state else task_id,
        "events": [event_view(e) for e in events],
        "at": at,
        "state": msgspec.to_builtins(state) if state else {},
        "status_names": STATUS_NAMES,
        "statuses": [s.value for s in Status],
    }
    return await render(request, "task_history.html", page_data)
