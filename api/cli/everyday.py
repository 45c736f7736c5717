"""The everyday commands, for people who live in a terminal: projects, tasks and jobs, and
`cairn run`, a quick action on the repository you stand in that you watch to its end. They talk
to the API like any client (api/cli/remote.py); every read takes --json."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cairn.api.cli.remote import Api, api_of
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError

SETTINGS_FLAGS = (("repository", "the repository: owner/repo, a URL, or (allowed) a local path"),
                  ("default-branch", "the branch runs start from"),
                  ("runtime", "claude, codex, gemini or shell"), ("model", "the runtime's model"),
                  ("effort", "the runtime's effort"), ("publish", "none, branch or pr"),
                  ("pipeline-template", "a template's slug for its tasks' steps"),
                  ("concurrency", "runs of the project at once"))  # fmt: skip
TERMINAL = {"succeeded", "failed", "dead_letter", "cancelled"}
EXIT = {"succeeded": 0, "cancelled": 3}  # anything else that ends: 1


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    projects = command("projects", run_projects, "a project's settings: repository, branch, "
                       "runtime, publish mode, ...")  # fmt: skip
    projects.add_argument("action", choices=["create", "list", "show", "set"],
                          help="create, list, show or set (its settings)")
    projects.add_argument("name", nargs="?", help="the project (not for list)")
    for flag, what in SETTINGS_FLAGS:
        projects.add_argument(f"--{flag}", help=f"{what} ('' clears it, with set)")
    _json(projects)

    tasks = command("tasks", run_tasks, "create, list, show, move, run and edit board tasks")
    tasks.add_argument("action", choices=["create", "list", "show", "move", "run", "edit"],
                       help="create, list, show, move (to a column), run or edit")
    tasks.add_argument("target", nargs="?", help="create: the title; else the task's id")
    tasks.add_argument("status", nargs="?", help="move: where to (ready, done, ...)")
    tasks.add_argument("--project", help="the project (default: default)")
    tasks.add_argument("--type", dest="task_type", help="feature, bug_fix, chore, docs, ...")
    tasks.add_argument("--priority", help="low, medium, high, urgent (create: medium)")
    tasks.add_argument("--title", help="edit: the new title")
    tasks.add_argument("--description", help="what should be done, at length")
    tasks.add_argument("--repo", help="this task's repository (else its project's)")
    tasks.add_argument("--runtime", help="this task's runtime (else its project's)")
    tasks.add_argument("--ready", action="store_true", help="create: straight to ready")
    tasks.add_argument("--reason", help="move: why")
    tasks.add_argument("--status", dest="status_filter", help="list: only this status")
    tasks.add_argument("--follow", "-f", action="store_true", help="run: watch the run to its end")
    tasks.add_argument("--quiet", "-q", action="store_true", help="create: print only the id")
    _json(tasks)

    jobs = command("jobs", run_jobs, "list, show, follow and cancel queue jobs")
    jobs.add_argument("action", choices=["list", "show", "logs", "cancel"],
                      help="list, show, logs (its output) or cancel")
    jobs.add_argument("id", nargs="?", help="the job's id (not for list)")
    jobs.add_argument("--status", help="list: only this status")
    jobs.add_argument("--project", help="list: only this project")
    jobs.add_argument("--limit", type=int, default=20, help="list: how many (default 20)")
    jobs.add_argument("--follow", "-f", action="store_true", help="logs: keep following")
    jobs.add_argument("--reason", help="cancel: why")
    _json(jobs)

    run = command("run", run_quick, "run an agent on the repository you stand in and watch it")
    run.add_argument("prompt", help="what the agent should do")
    run.add_argument("--repo", help="a path or URL (default: this directory's repository)")
    run.add_argument("--runtime", help="claude, codex, gemini or shell (default: the install's)")
    run.add_argument("--model", help="the runtime's model")
    run.add_argument("--publish", help="none, branch or pr (default: the install's)")
    run.add_argument("--project", default="default", help="the project (default: default)")
    run.add_argument("--detach", action="store_true", help="print the job's id and leave")


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print what the API answered")


def out(args: argparse.Namespace, value: Any, lines: Iterable[str]) -> None:
    if args.json:
        print(json.dumps(value, indent=2))
    else:
        for line in lines:
            print(line)


def _need(value: str | None, what: str) -> str:
    if not value:
        raise CairnError(f"{what} is required here")
    return value


# ---- projects ------------------------------------------------------------------------------


def run_projects(settings: Settings, args: argparse.Namespace) -> int:
    api = api_of(settings)
    if args.action == "list":
        found = api.get("/api/v2/projects")["projects"]
        out(args, found, [f"{p['project']:<24} {p['total']:>4} task(s)  "
                          f"{p['settings'].get('repository') or '(no repository)'}"
                          for p in found] or ["no projects yet"])  # fmt: skip
        return 0
    name = _need(args.name, "the project's name")
    given = {flag.replace("-", "_"): getattr(args, flag.replace("-", "_"))
             for flag, _ in SETTINGS_FLAGS}  # fmt: skip
    changes: dict[str, Any] = {("publish_mode" if k == "publish" else k): v
                               for k, v in given.items() if v is not None}  # fmt: skip
    if "concurrency" in changes and changes["concurrency"] != "":
        changes["concurrency"] = int(changes["concurrency"])
    if args.action == "create":
        shown = api.post(f"/api/v2/projects/{name}", {k: v for k, v in changes.items() if v})
    elif args.action == "set":
        shown = api.patch(f"/api/v2/projects/{name}",
                          {k: (None if v == "" else v) for k, v in changes.items()})  # fmt: skip
    else:
        shown = api.get(f"/api/v2/projects/{name}")
    settings_ = shown.get("settings") or {}
    out(args, shown, [f"project {shown.get('project', name)}"] + [
        f"  {k:<18} {v if v is not None else '-'}" for k, v in settings_.items()])
    return 0


# ---- tasks ---------------------------------------------------------------------------------


def run_tasks(settings: Settings, args: argparse.Namespace) -> int:
    api = api_of(settings)
    if args.action == "list":
        project = args.project or "default"
        board = api.get("/api/v2/tasks/board", project=project)
        cards = [c for col in board["columns"] for c in col["cards"]
                 if not args.status_filter or col["status"] == args.status_filter]  # fmt: skip
        out(args, cards, [f"{c['id']}  {c['status']:<11} {c['title']}" for c in cards]
            or [f"no tasks in {project}"])  # fmt: skip
        return 0
    if args.action == "create":
        body: dict[str, Any] = {"title": _need(args.target, "the title"),
                                "task_type": args.task_type or "feature",
                                "priority": args.priority or "medium",
                                "project": args.project or "default"}  # fmt: skip
        if args.description:
            body["description"] = args.description
        spec = _spec(args)
        if spec:
            body["spec"] = spec
        if args.ready:
            body["status"] = "ready"
        made = api.post("/api/v2/tasks", body)
        shown = [made["id"]] if args.quiet else [
            f"created {made['id']} in {body['project']}: {body['title']}"]
        out(args, made, shown)
        return 0
    task_id = _need(args.target, "the task's id")
    if args.action == "show":
        task = api.get(f"/api/v2/tasks/{task_id}")
        out(args, task, _task_lines(task))
        return 0
    if args.action == "move":
        body = {"to": _need(args.status, "where to move it")}
        if args.reason:
            body["reason"] = args.reason
        moved = api.post(f"/api/v2/tasks/{task_id}/transition", body)
        out(args, moved, [f"{task_id} is {moved.get('status', body['to'])}"])
        return 0
    if args.action == "edit":
        patch = {k: v for k, v in (("title", args.title), ("description", args.description),
                                   ("priority", args.priority), ("task_type", args.task_type))
                 if v is not None}  # fmt: skip
        spec = _spec(args)
        if spec:
            patch["spec"] = spec
        if not patch:
            raise CairnError("nothing to change: give --title, --description, --priority, "
                             "--type, --repo or --runtime")  # fmt: skip
        edited = api.patch(f"/api/v2/tasks/{task_id}", patch)
        out(args, edited, [f"edited {task_id}"])
        return 0
    ran = api.post(f"/api/v2/tasks/{task_id}/run")
    job_id = str(ran["job_id"])
    if not args.follow:
        out(args, ran, [f"run {job_id} of {task_id} queued; follow it: cairn jobs logs "
                        f"{job_id} -f"])  # fmt: skip
        return 0
    return follow(api, job_id)


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if args.repo:
        spec["repository"] = _repository(args.repo)
    if args.runtime:
        spec["targetRuntime"] = args.runtime
    if spec:
        spec["task"] = {"instructions": args.description or args.title or args.target or ""}
    return spec


def _task_lines(task: dict[str, Any]) -> list[str]:
    lines = [f"{task['id']}  {task['title']}",
             f"  status {task['status']} · {task['task_type']} · priority {task['priority']} · "
             f"project {task['project']}"]  # fmt: skip
    if task.get("blocked"):
        lines.append(f"  blocked: {task['blocked'].get('to_unblock', '')}")
    for run_id in task.get("run_ids") or []:
        lines.append(f"  run {run_id}")
    return lines


# ---- jobs ----------------------------------------------------------------------------------


def run_jobs(settings: Settings, args: argparse.Namespace) -> int:
    api = api_of(settings)
    if args.action == "list":
        page = api.get("/api/queue/jobs", status=args.status, project=args.project,
                       limit=args.limit)  # fmt: skip
        out(args, page, [f"{j['id']}  {j['status']:<16} {j['type']:<8} "
                         f"{(j.get('normalized') or {}).get('targetRuntime') or '-':<7} "
                         f"{j['project']}" for j in page["items"]] or ["no jobs"])  # fmt: skip
        return 0
    job_id = _need(args.id, "the job's id")
    if args.action == "show":
        job = api.get(f"/api/queue/jobs/{job_id}")
        out(args, job, _job_lines(job))
        return 0
    if args.action == "cancel":
        body = {"reason": args.reason} if args.reason else {}
        cancelled = api.post(f"/api/queue/jobs/{job_id}/cancel", body)
        out(args, cancelled, [f"{job_id}: cancel requested"])
        return 0
    if args.follow:
        return follow(api, job_id, output=True)
    entries = api.get(f"/api/queue/jobs/{job_id}/output")["items"]
    for entry in entries:
        sys.stdout.write(entry["text"])
    return 0


def _job_lines(job: dict[str, Any]) -> list[str]:
    normalized = job.get("normalized") or {}
    lines = [f"{job['id']}  {job['status']}  attempt {job['attempt']} of {job['maxAttempts']}",
             f"  {job['type']} · {normalized.get('targetRuntime') or '-'} · "
             f"{normalized.get('repository') or '-'} · project {job['project']}"]  # fmt: skip
    for step in job.get("steps") or []:
        lines.append(f"  step {step['index']} {step['stepId']}: {step['status']}"
                     + (f" (exit {step['exitStatus']})" if step.get("exitStatus") is not None
                        else ""))  # fmt: skip
        if step.get("message"):
            lines.append(f"    {step['message']}")
    outcome = job.get("outcome") or {}
    if outcome:
        error = outcome.get("error") or {}
        lines.append(f"  outcome: {error.get('message') or outcome.get('summary') or ''}")
    if published := job.get("publish"):
        where = " ".join(str(published[k]) for k in ("branch", "prUrl") if published.get(k))
        lines.append(f"  published: {published['outcome']} {where}".rstrip())
    return lines


# ---- run -----------------------------------------------------------------------------------


def run_quick(settings: Settings, args: argparse.Namespace) -> int:
    api = api_of(settings)
    body: dict[str, Any] = {"prompt": args.prompt, "project": args.project,
                            "repository": _repository(args.repo or _here())}  # fmt: skip
    for key, value in (("runtime", args.runtime), ("model", args.model),
                       ("publishMode", args.publish)):  # fmt: skip
        if value:
            body[key] = value
    made = api.post("/api/v2/quick-runs", body)
    job_id = str(made["id"])
    if args.detach:
        print(job_id)
        return 0
    print(f"cairn: {job_id} queued on {body['repository']}", file=sys.stderr)
    return follow(api, job_id)


def _here() -> str:
    """The repository of the current directory: its top folder."""
    found = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True,
                           text=True, check=False)  # fmt: skip
    if found.returncode != 0:
        raise CairnError("this directory is not in a git repository: run `cairn run` in one, "
                         "or name one with --repo")  # fmt: skip
    return found.stdout.strip()


def _repository(given: str) -> str:
    """A path as an absolute one (the worker runs elsewhere); anything else as given."""
    if given.startswith(("/", ".", "~")) and "://" not in given:
        return str(Path(given).expanduser().resolve())
    return given


def follow(api: Api, job_id: str, *, output: bool = False) -> int:
    """Print the job's stages, steps and outcome as they happen (with `output`, its output
    too), until it ends; the exit status says how it ended (0 succeeded, 1 failed, 3
    cancelled)."""
    if output:
        return _follow_output(api, job_id)
    ended, position = "", ""
    for kind, event in api.events(f"/api/queue/jobs/{job_id}/events/stream"):
        data = (event.get("data") or {}) if isinstance(event, dict) else {}
        line = describe(kind, data)
        if line:
            print(line, flush=True)
        if kind in ("job.succeeded", "job.cancelled", "job.dead_lettered") or (
            kind == "job.failed" and not data.get("retry_at")
        ):  # fmt: skip
            ended = kind
            if event.get("position"):  # the read model shows the end once it has applied it
                position = f"{int(job_id.split('-')[1])}:{event['position']}"
            break
    job = api.get(f"/api/queue/jobs/{job_id}", min_position=position or None)
    outcome = job.get("outcome") or {}
    said = (outcome.get("error") or {}).get("message") or outcome.get("summary")
    if said:
        print(f"{job['status']}: {said}")
    return {"job.succeeded": 0, "job.cancelled": 3}.get(ended, 1)


def _follow_output(api: Api, job_id: str) -> int:
    after = "0-0"
    while True:
        page = api.get(f"/api/queue/jobs/{job_id}/output", after=after)
        for entry in page["items"]:
            sys.stdout.write(entry["text"])
        sys.stdout.flush()
        after = page.get("next") or after
        job = api.get(f"/api/queue/jobs/{job_id}")
        if job["status"] in TERMINAL and not page["items"]:
            return EXIT.get(str(job["status"]), 1)
        time.sleep(0.5)


def describe(kind: str, data: dict[str, Any]) -> str:
    """One line for a person following a job."""
    if kind == "job.claimed":
        return f"claimed by {data.get('worker_id')} (attempt {data.get('attempt')})"
    if kind == "job.stage_started":
        return f"{data.get('stage')}…"
    if kind == "job.branch_resolved":
        return f"  branch {data.get('working')} from {data.get('starting')}"
    if kind == "job.step_started":
        agent = data.get("agent") or {}
        who = f" ({agent.get('cli')} {agent.get('version') or ''})".rstrip() if agent else ""
        return f"  step {data.get('index')} {data.get('title') or data.get('step_id')}{who}"
    if kind == "job.step_finished":
        said = f"\n    {data['message']}" if data.get("message") else ""
        error = (data.get("error") or {}).get("message")
        return f"  step {data.get('index')}: {data.get('outcome')}" + (
            f": {error}" if error else "") + said  # fmt: skip
    if kind == "job.published":
        where = " ".join(str(data[k]) for k in ("branch", "pr_url") if data.get(k))
        return f"  published: {data.get('outcome')} {where}".rstrip()
    if kind == "job.failed":
        error = data.get("error") or {}
        again = f"; retried at {data['retry_at']}" if data.get("retry_at") else ""
        return f"failed: {error.get('message') or error.get('code')}{again}"
    if kind in ("job.succeeded", "job.cancelled", "job.dead_lettered"):
        return kind.split(".", 1)[1].replace("_", " ")
    return ""
