"""`cairn import-prd` as a person runs it: a real process against the real server."""

from __future__ import annotations

import json
from pathlib import Path

from cairn.commands.tasks.task import load_tasks
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore
from tests.api.test_cli import cairn
from tests.domain.planning.prd_samples import ACCOUNTS


async def test_import_prd_prints_the_preview_and_commits(
    server: EmbeddedServer, keys: Keys, store: EventStore, tmp_path: Path
) -> None:
    prd = tmp_path / "accounts.md"
    prd.write_text(ACCOUNTS)
    shown = cairn(server, keys, "import-prd", str(prd), "--project", "acme")
    assert shown.returncode == 0, shown.stderr
    assert "tasks:" in shown.stdout and "waves:" in shown.stdout and "edges:" in shown.stdout
    assert await store.redis.xlen(keys.log(keys.partition_of("acme"))) == 0
    done = cairn(server, keys, "import-prd", str(prd), "--project", "acme", "--commit", "--json")
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)["created"]
    assert len(await load_tasks(store, created)) == len(created) > 3
    again = cairn(server, keys, "import-prd", str(prd), "--project", "acme", "--commit")
    assert "unchanged" in again.stdout and "created" not in again.stdout.split("unchanged")[1]
    bad = cairn(server, keys, "import-prd", str(prd), "--granularity", "huge")
    assert bad.returncode == 2 and "granularity" in bad.stderr
