"""Planning commands: `cairn import-prd` (preview a PRD, commit it) and `cairn tasks-md`
(export the board as TASKS.md, sync its edits back)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

from cairn.api.cli.store import keys_of, open_client
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError, ValidationFailed


def import_prd(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.commands.planning.imports import commit_import, preview_import
    from cairn.domain.planning.preview import MAX_PRD_CHARS, ImportRequest
    from cairn.domain.tasks.spec import parse_model
    from cairn.streams.store import EventStore

    path = Path(args.file)
    if path.stat().st_size > 4 * MAX_PRD_CHARS:
        reason = f"{path} is {path.stat().st_size} bytes; at most {MAX_PRD_CHARS} characters"
        raise ValidationFailed(reason, [{"path": "source", "reason": reason}])
    fields: dict[str, Any] = {
        "project": args.project, "source": path.read_text(), "granularity": args.granularity,
        "auto_ready": args.auto_ready, "cancel_removed": args.cancel_removed,
    }  # fmt: skip
    if args.hint is not None:
        fields["max_parallelism_hint"] = args.hint
    if args.document:
        fields["document"] = args.document
    request = parse_model(ImportRequest, fields)

    async def run() -> int:
        client = await open_client(settings)
        store = EventStore(client, keys_of(settings), settings.command_ttl_s)
        try:
            previewed = await preview_import(store, request)
            view = previewed.view()
            if args.json and not args.commit:
                print(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
            elif not args.json:
                print_preview(view)
            if args.commit:
                result, done = await commit_import(store, request, settings.flags, actor="cli",
                                                   preview_id=previewed.preview_id)  # fmt: skip
                created = [done.task_ids[k] for k in done.changes.added]
                if args.json:
                    print(orjson.dumps({"preview": view, "import_id": result.id,
                                        "duplicate": result.duplicate, "created": created},
                                       option=orjson.OPT_INDENT_2).decode())  # fmt: skip
                else:
                    unchanged = result.duplicate or not result.position
                    word = "unchanged (already committed)" if unchanged else "committed"
                    print(f"\nimport {result.id} {word}")
                    for key in done.changes.added:
                        print(f"  created {done.task_ids[key]}  {key}")
                    for change in done.changes.updated:
                        print(f"  updated {change.task_id}  {change.key}")
        finally:
            await client.aclose()
        return 0

    return asyncio.run(run())


def print_preview(view: dict[str, Any]) -> None:
    print(f"{view['document']}: {view['counts']['tasks']} tasks, {view['counts']['edges']} edges,"
          f" {view['counts']['waves']} waves ({view['granularity']}, hint "
          f"{view['max_parallelism_hint']})")  # fmt: skip
    print("\ntasks:")
    for t in view["tasks"]:
        after = f"  <- {', '.join(t['depends_on'])}" if t["depends_on"] else ""
        print(f"  [{t['wave']}] {t['key']:<12} {t['title']}{after}")
    print("\nedges:")
    for e in view["edges"]:
        print(f"  {e['task']} depends on {e['blocked_by']}")
    print("\nwaves:")
    for i, wave in enumerate(view["waves"]):
        print(f"  {i}: {', '.join(wave)}")
    for w in view["warnings"]:
        print(f"warning: {w['message']}", file=sys.stderr)
    diff = view["diff"]
    if diff["import_id"]:
        print(f"\nagainst revision {diff['base_revision']}: {len(diff['added'])} added, "
              f"{len(diff['updated'])} updated, {len(diff['removed'])} removed")  # fmt: skip
        for r in diff["removed"]:
            print(f"  removed {r['key']} ({r['task_id']}): {r['title']}")


def tasks_md_export(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.cli.tasks_md import export

    return export(settings, args.project, args.out)


def tasks_md_sync(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.cli.tasks_md import sync

    return sync(settings, Path(args.file), args.project, write=args.write)

def add_commands(command: Any) -> None:
    """The planning subcommands, on the main parser's `command` maker."""
    prd = command("import-prd", import_prd, "preview a PRD as a task graph; --commit imports it")
    prd.add_argument("file", help="the PRD, a markdown file")
    prd.add_argument("--project", default="default", help="the board to import into")
    prd.add_argument("--granularity", default="balanced", help="coarse, balanced or fine")
    prd.add_argument("--document", help="the PRD's identity in the project (default: its title)")
    prd.add_argument("--auto-ready", action="store_true",
                     help="run the graph in dependency order as blockers finish")  # fmt: skip
    prd.add_argument("--hint", type=int, help="tasks ready or in progress at once (default 4)")
    prd.add_argument("--cancel-removed", action="store_true",
                     help="cancel the tasks of items the PRD no longer has")  # fmt: skip
    prd.add_argument("--commit", action="store_true", help="import it (idempotent)")
    prd.add_argument("--json", action="store_true", help="print JSON")
    tasks_md = command("tasks-md", _need_subcommand, "the board as TASKS.md, and its edits back")
    sub = tasks_md.add_subparsers(metavar="ACTION", help="export or sync")
    export = sub.add_parser("export", help="write the board as a markdown table")
    export.set_defaults(run=tasks_md_export, process=False)
    export.add_argument("--project", default="default", help="the board to export")
    export.add_argument("--out", help="the file to write (default: standard output)")
    sync = sub.add_parser("sync", help="turn the file's edits into commands (status, title, "
                          "assignee, new rows), refusing stale ones")  # fmt: skip
    sync.set_defaults(run=tasks_md_sync, process=False)
    sync.add_argument("file", help="a TASKS.md written by export, then edited")
    sync.add_argument("--project", help="the board (default: the one the file was exported from)")
    sync.add_argument("--write", action="store_true",
                      help="export the file again afterwards, unless a row was refused")


def _need_subcommand(settings: Settings, args: argparse.Namespace) -> int:
    raise CairnError("say what to do: cairn tasks-md export ... or cairn tasks-md sync FILE")
