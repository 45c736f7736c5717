"""`cairn templates` and `cairn schedules`: the template catalog and the schedules from the
command line, through the same commands and read models as the API (output as JSON)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from cairn.api.cli.store import keys_of, open_client
from cairn.commands.settings import Settings
from cairn.domain.errors import NotFound, ValidationFailed
from cairn.domain.tasks.spec import parse_model
from cairn.streams.store import EventStore

ACTOR = "cli"
T = TypeVar("T")


def _run(settings: Settings, work: Callable[[EventStore], Awaitable[T]]) -> T:
    async def run() -> T:
        client = await open_client(settings)
        try:
            return await work(EventStore(client, keys_of(settings), settings.command_ttl_s))
        finally:
            await client.aclose()

    return asyncio.run(run())


def _print(value: Any) -> int:
    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())
    return 0


def _json_file(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        errors = [{"path": "file", "reason": str(e)}]
        raise ValidationFailed(f"{path} is not JSON: {e}", errors) from e


def templates(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.planning.templates import template_view
    from cairn.commands.planning.templates import load_template, save_template
    from cairn.domain.planning.template_inputs import expand
    from cairn.domain.planning.templates import TemplateBody, resolve
    from cairn.domain.tasks.pipelines import PIPELINES
    from cairn.projections.planning.templates import Templates

    async def work(store: EventStore) -> Any:
        catalog = Templates(store.redis, store.keys)
        if args.action == "list":
            saved = {t.slug: t for t in await catalog.saved()}
            versions = {s: resolve(s, saved.get(s)) for s in sorted(set(PIPELINES) | set(saved))}
            return [{"slug": s, "version": v.number, "title": v.title} for s, v in versions.items()]
        if args.action == "save":
            body = parse_model(TemplateBody, _json_file(args.target))
            result = await save_template(store, body, actor=ACTOR)
            return {"slug": body.slug, "written": result.written}
        stored = await load_template(store, args.target)
        try:
            found = resolve(args.target, stored, args.version)
        except ValidationFailed as e:
            raise NotFound(e.message) from e
        if args.action == "show":
            return template_view(args.target, found, stored)
        given = dict(_input(i) for i in args.input or [])
        return {"slug": args.target, "version": found.number,
                "steps": expand(found.inputs, found.steps, given)}  # fmt: skip

    return _print(_run(settings, work))


def _input(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep:
        raise ValidationFailed(f"--input {text!r} is not NAME=VALUE",
                               [{"path": "input", "reason": "NAME=VALUE"}])  # fmt: skip
    try:
        return name, json.loads(raw)  # 3, true, "x" as JSON; anything else is the text
    except json.JSONDecodeError:
        return name, raw


def schedules(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.planning.schedules import schedule_view
    from cairn.commands.planning import schedules as commands
    from cairn.domain.planning.schedules import ScheduleInput
    from cairn.projections.planning.schedules import Schedules

    async def work(store: EventStore) -> Any:
        contract = settings.contract()
        if args.action == "list":
            found = await Schedules(store.redis, store.keys).listed(args.project, 500)
            return [schedule_view(s) for s in found]
        if args.action == "add":
            given = parse_model(ScheduleInput, _json_file(args.target))
            result = await commands.create_schedule(store, given, contract, actor=ACTOR)
            return {"id": result.id}
        if args.action == "run":
            _, job_id = await commands.run_schedule_now(store, args.target, contract, actor=ACTOR)
            return {"id": args.target, "job_id": job_id}
        change = {"pause": commands.pause_schedule, "resume": commands.resume_schedule,
                  "delete": commands.delete_schedule}[args.action]  # fmt: skip
        await change(store, args.target, actor=ACTOR)
        return {"id": args.target, "status": (await commands.load_schedule(store,
                                                                           args.target)).status}

    return _print(_run(settings, work))


def add_commands(command: Any) -> None:
    """`cairn templates` and `cairn schedules`, on the main parser's `command` maker."""
    t = command("templates", templates, "the template catalog: list, show, save, expand")
    t.add_argument("action", choices=["list", "show", "save", "expand"], help="what to do")
    t.add_argument("target", nargs="?", default="", help="a slug (show, expand) or a JSON file "
                   "(save: the body of POST /api/templates)")  # fmt: skip
    t.add_argument("--version", type=int, help="a version (default: the latest)")
    t.add_argument("--input", action="append", help="NAME=VALUE (expand; VALUE as JSON if it is)")
    s = command("schedules", schedules, "schedules: list, add, pause, resume, delete, run now")
    s.add_argument("action", choices=["list", "add", "pause", "resume", "delete", "run"],
                   help="what to do")  # fmt: skip
    s.add_argument("target", nargs="?", default="", help="a schedule id, or a JSON file (add: "
                   "the body of POST /api/schedules)")  # fmt: skip
    s.add_argument("--project", help="list one project's schedules")
