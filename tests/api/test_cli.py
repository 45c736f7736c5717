"""The CLI as an auditor uses it: real processes against the real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cairn.commands.tasks import create_task, transition_task
from cairn.domain.task_spec import TaskSpec
from cairn.domain.task_states import Flags
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer, find_cli_binary
from cairn.streams.store import EventStore


def cairn(server: EmbeddedServer, keys: Keys, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAIRN_REDIS_URL": server.url, "CAIRN_PREFIX": keys.prefix,
           "CAIRN_PARTITIONS": str(keys.partitions)}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "cairn.api.cli", *args], env=env,
                          capture_output=True, text=True, timeout=30)  # fmt: skip


@pytest.fixture
async def two_tasks(store: EventStore) -> list[str]:
    ids = []
    for project in ("alpha", "beta"):
        spec = TaskSpec.model_validate({"title": project, "task_type": "docs", "priority": 1,
                                        "project": project})  # fmt: skip
        ids.append((await create_task(store, spec, actor="ann")).id)
    await transition_task(store, ids[0], "ready", Flags(), actor="bob")
    return ids


async def test_tail_filters(server: EmbeddedServer, keys: Keys, two_tasks: list[str]) -> None:
    out = cairn(server, keys, "tail", "--json").stdout.splitlines()
    assert [json.loads(line)["type"] for line in out].count("task.created") == 2
    only = cairn(server, keys, "tail", "--project", "alpha", "--type", "task.trans*", "--json")
    [line] = only.stdout.splitlines()
    assert json.loads(line)["agg"] == two_tasks[0] and json.loads(line)["actor"] == "bob"
    by_agg = cairn(server, keys, "tail", "--aggregate", two_tasks[1]).stdout.splitlines()
    assert len(by_agg) == 1 and "task.created" in by_agg[0]


async def test_replay_shows_state_after_each_event(
    server: EmbeddedServer, keys: Keys, two_tasks: list[str]
) -> None:
    out = cairn(server, keys, "replay", two_tasks[0]).stdout.splitlines()
    states = [json.loads(line.split("state: ", 1)[1]) for line in out if "state: " in line]
    assert [s["status"] for s in states] == ["backlog", "ready"]
    missing = cairn(server, keys, "replay", "task-00-doesnotexist0000000")
    assert missing.returncode == 2 and "no events" in missing.stderr


async def test_status_and_rebuild(server: EmbeddedServer, keys: Keys, two_tasks: list[str]) -> None:
    status = cairn(server, keys, "status")
    assert status.returncode == 0 and "board projection lag: 3 events" in status.stdout
    rebuilt = cairn(server, keys, "rebuild")
    assert rebuilt.returncode == 0 and "rebuilt board from 3 events" in rebuilt.stderr
    assert "rebuilt queue from 3 events" in rebuilt.stderr
    after = cairn(server, keys, "status").stdout
    assert "board projection lag: 0 events" in after and "queue projection lag: 0 events" in after


async def test_redis_cli_xrange_reads_the_log(
    server: EmbeddedServer, keys: Keys, two_tasks: list[str]
) -> None:
    binary = find_cli_binary()
    assert binary is not None
    log = keys.log(keys.partition_of_id(two_tasks[0]))
    out = subprocess.run([str(binary), "-p", str(server.port), "XRANGE", log, "-", "+"],
                         capture_output=True, text=True, timeout=10).stdout  # fmt: skip
    assert "task.created" in out and two_tasks[0] in out and '"title":"alpha"' in out
    for field in ("type", "agg", "ver", "ts", "actor", "data"):
        assert f"\n{field}\n" in out
