"""Every dashboard route, and its static files. Pages are GETs that read read models; every
action is a POST of a form (or the same form from a script) that runs a command."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from cairn.api.dashboard import (
    audit,
    board,
    live,
    live_sessions,
    login,
    orchestrator_pages,
    orchestrator_run,
    projects_page,
    queue_page,
    run_page,
    submit,
    task_actions,
    task_pages,
    telemetry,
    workers_page,
)
from cairn.api.dashboard.render import PACKAGE
from cairn.api.tasks import routes as _tasks  # noqa: F401  (registers the task_id convertor)


async def home(request: Request) -> Response:
    return RedirectResponse("/tasks", 303)


TASK = "/tasks/{task_id:task_id}"
JOB = "/queue/{job_id}"
LIVE = JOB + "/live-sessions/{sid}"
RUN = "/orchestrator/{run_id}"
ROUTES: list[BaseRoute] = [
    Route("/", home, methods=["GET"]),
    Route("/login", login.login_page, methods=["GET"]),
    Route("/login", login.login, methods=["POST"]),
    Route("/logout", login.logout, methods=["POST"]),
    # The board and tasks
    Route("/tasks", board.board_page, methods=["GET"]),
    Route("/tasks/new", task_pages.new_task_page, methods=["GET"]),
    Route("/tasks/new", task_pages.create, methods=["POST"]),
    Route(TASK, task_pages.task_page, methods=["GET"]),
    Route(TASK + "/history", task_pages.history_page, methods=["GET"]),
    Route(TASK + "/edit", task_pages.edit, methods=["POST"]),
    Route(TASK + "/move", task_actions.move_task, methods=["POST"]),
    Route(TASK + "/run", task_actions.run_task, methods=["POST"]),
    Route(TASK + "/retry", task_actions.retry, methods=["POST"]),
    Route(TASK + "/cancel", task_actions.cancel, methods=["POST"]),
    Route(TASK + "/changes", task_actions.changes, methods=["POST"]),
    Route(TASK + "/dependencies", task_pages.add_blocker, methods=["POST"]),
    Route(TASK + "/dependencies/{dep_id}/remove", task_pages.remove_blocker, methods=["POST"]),
    # Projects
    Route("/projects", projects_page.projects_page, methods=["GET"]),
    Route("/projects/new", projects_page.create, methods=["POST"]),
    Route("/projects/{name}", projects_page.project_page, methods=["GET"]),
    Route("/projects/{name}", projects_page.save, methods=["POST"]),
    # The queue and runs
    Route("/queue", queue_page.queue_page, methods=["GET"]),
    Route("/queue/new", submit.submit_page, methods=["GET"]),
    Route("/queue/new", submit.submit_typed, methods=["POST"]),
    Route("/queue/quick", submit.submit_quick, methods=["POST"]),
    Route(JOB, run_page.run_page, methods=["GET"]),
    Route(JOB + "/edit", submit.edit_page, methods=["GET"]),
    Route(JOB + "/edit", submit.edit_job, methods=["POST"]),
    Route(JOB + "/cancel", run_page.cancel, methods=["POST"]),
    Route(JOB + "/resubmit", run_page.resubmit, methods=["POST"]),
    Route(JOB + "/control", run_page.control, methods=["POST"]),
    Route(JOB + "/operator-messages", run_page.message, methods=["POST"]),
    Route(JOB + "/promote", run_page.promote, methods=["POST"]),
    Route(JOB + "/follow-ups", run_page.follow_up_run, methods=["POST"]),
    Route(JOB + "/output", run_page.output, methods=["GET"]),
    Route(JOB + "/output/stream", run_page.output_stream, methods=["GET"]),
    Route(JOB + "/transcript/stream", run_page.transcript_stream, methods=["GET"]),
    Route(JOB + "/artifacts/{path:path}", run_page.artifact, methods=["GET"]),
    Route(JOB + "/log", run_page.full_log, methods=["GET"]),
    Route(JOB + "/live-sessions", live_sessions.sessions, methods=["GET"]),
    Route(JOB + "/live-sessions", live_sessions.open_live, methods=["POST"]),
    Route(LIVE + "/tickets", live_sessions.ticket, methods=["POST"]),
    Route(LIVE + "/hand-back", live_sessions.give_back, methods=["POST"]),
    Route(LIVE + "/close", live_sessions.stop, methods=["POST"]),
    # Orchestrator runs and the service catalog
    Route("/orchestrator", orchestrator_pages.runs_page, methods=["GET"]),
    Route("/orchestrator/new", orchestrator_pages.new_run_page, methods=["GET"]),
    Route("/orchestrator/new", orchestrator_pages.submit, methods=["POST"]),
    Route("/orchestrator/services", orchestrator_pages.services_page, methods=["GET"]),
    Route(RUN, orchestrator_run.run_page, methods=["GET"]),
    Route(RUN + "/approve", orchestrator_run.approve, methods=["POST"]),
    Route(RUN + "/reject", orchestrator_run.reject, methods=["POST"]),
    Route(RUN + "/cancel", orchestrator_run.cancel, methods=["POST"]),
    # Workers, telemetry, audit, live updates
    Route("/workers", workers_page.workers_page, methods=["GET"]),
    Route("/workers/pause", workers_page.set_pause, methods=["POST"]),
    Route("/telemetry", telemetry.telemetry_page, methods=["GET"]),
    Route("/audit", audit.audit_page, methods=["GET"]),
    Route("/live", live.live_events, methods=["GET"]),
    # follow_symlink: a strict editable install links each file into the package tree.
    Mount("/static", StaticFiles(directory=PACKAGE / "static", follow_symlink=True), name="static"),
]
