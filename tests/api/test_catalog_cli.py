"""`cairn templates` and `cairn schedules` as a person runs them: real processes against the
real server, through the same commands as the API; bad input exits 2 naming the field."""

from __future__ import annotations

import json
from pathlib import Path

from cairn.commands.planning.schedules import load_schedule
from cairn.commands.planning.templates import load_template
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore
from tests.api.test_cli import cairn


async def test_templates_save_show_expand(
    server: EmbeddedServer, keys: Keys, store: EventStore, tmp_path: Path
) -> None:
    listed = cairn(server, keys, "templates", "list")
    assert listed.returncode == 0 and {"slug": "docs", "version": 1,
                                       "title": "Docs pipeline"} in json.loads(listed.stdout)
    body = tmp_path / "bump.json"
    body.write_text(json.dumps({"slug": "bump", "title": "Bump", "inputs": [
        {"name": "count", "type": "integer"}], "steps": [
        {"id": "go", "title": "Bump {{count}} times", "instructions": "bump"}]}))
    saved = cairn(server, keys, "templates", "save", str(body))
    assert saved.returncode == 0 and json.loads(saved.stdout)["written"] == 2, saved.stderr
    stored = await load_template(store, "bump")
    assert stored is not None and stored.numbers() == [1]
    shown = json.loads(cairn(server, keys, "templates", "show", "bump").stdout)
    assert shown["version"] == 1 and shown["inputs"][0]["name"] == "count"
    expanded = cairn(server, keys, "templates", "expand", "bump", "--input", "count=3")
    assert json.loads(expanded.stdout)["steps"][0]["title"] == "Bump 3 times"
    bad = cairn(server, keys, "templates", "expand", "bump", "--input", "count=three")
    assert bad.returncode == 2 and "inputs.count: must be an integer" in bad.stderr
    missing = cairn(server, keys, "templates", "show", "nothing")
    assert missing.returncode == 2 and "unknown template" in missing.stderr


async def test_schedules_add_pause_run_delete(
    server: EmbeddedServer, keys: Keys, store: EventStore, tmp_path: Path
) -> None:
    body = tmp_path / "nightly.json"
    body.write_text(json.dumps({"project": "ops", "name": "nightly", "cron": "0 3 * * *",
                                "timezone": "Europe/Berlin", "job": {"type": "noop"}}))
    added = cairn(server, keys, "schedules", "add", str(body))
    assert added.returncode == 0, added.stderr
    schedule_id = json.loads(added.stdout)["id"]
    paused = cairn(server, keys, "schedules", "pause", schedule_id)
    assert json.loads(paused.stdout)["status"] == "paused"
    run = cairn(server, keys, "schedules", "run", schedule_id)
    assert json.loads(run.stdout)["job_id"].startswith("job-")
    assert (await load_schedule(store, schedule_id)).fire_count == 1
    deleted = cairn(server, keys, "schedules", "delete", schedule_id)
    assert json.loads(deleted.stdout)["status"] == "deleted"
    body.write_text(json.dumps({"name": "bad", "cron": "every night", "job": {"type": "noop"}}))
    bad = cairn(server, keys, "schedules", "add", str(body))
    assert bad.returncode == 2 and "cron:" in bad.stderr
