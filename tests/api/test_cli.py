"""The CLI as an auditor uses it: real processes against the real server."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cairn.api.cli.datadir import hold_data_dir
from cairn.api.cli.main import build_parser
from cairn.commands.tasks.task import create_task, transition_task
from cairn.domain.tasks.spec import TaskSpec
from cairn.domain.tasks.states import Flags
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer, free_port
from cairn.streams.store import EventStore


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    return subprocess.run([sys.executable, "-m", "cairn.api.cli", *args], env=clean | env,
                          capture_output=True, text=True, timeout=30)  # fmt: skip


def cairn(
    server: EmbeddedServer, keys: Keys, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return run(*args, CAIRN_REDIS_URL=server.url, CAIRN_PREFIX=keys.prefix,
               CAIRN_PARTITIONS=str(keys.partitions), **env)  # fmt: skip


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
    log = keys.log(keys.partition_of_id(two_tasks[0]))
    done = cairn(server, keys, "redis-cli", "XRANGE", log, "-", "+")
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "task.created" in out and two_tasks[0] in out and '"title":"alpha"' in out
    for field in ("type", "agg", "ver", "ts", "actor", "data"):
        assert f"\n{field}\n" in out


def test_redis_cli_gets_the_password_through_the_environment(
    server: EmbeddedServer, keys: Keys, tmp_path: Path
) -> None:
    fake = tmp_path / "redis-cli"
    fake.write_text('#!/bin/sh\necho "args: $*"\necho "auth: $REDISCLI_AUTH"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = cairn(server, keys, "redis-cli", "--raw", "XLEN", "some key", **env)
    assert done.returncode == 0, done.stderr
    password = server.url.split("@")[0].rsplit(":", 1)[1]
    args = done.stdout.splitlines()[0]
    assert password not in args and f"-p {server.port}" in args
    assert args.endswith("--raw XLEN some key")
    assert done.stdout.splitlines()[1] == f"auth: {password}"


def _missing_help(parser: argparse.ArgumentParser, path: str = "cairn") -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += _missing_help(sub, f"{path} {name}")
        elif not action.help and not isinstance(action, argparse._HelpAction):
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_flag_has_help() -> None:
    assert _missing_help(build_parser()) == []  # sub-subcommands (tasks-md sync) included


@pytest.mark.parametrize("command", ["status", "tail", "replay task-00-x", "rebuild"])
def test_a_store_that_is_down_is_one_clear_line(command: str, tmp_path: Path) -> None:
    port = free_port()
    env = {"CAIRN_REDIS_URL": f"redis://:secret-pw@127.0.0.1:{port}/0",
           "CAIRN_DATA_DIR": str(tmp_path)}  # fmt: skip
    done = run(*command.split(), **env)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert f"cannot reach the store at 127.0.0.1:{port}" in line and "cairn up" in line
    assert "secret-pw" not in line


def test_without_a_store_the_commands_say_how_to_get_one(tmp_path: Path) -> None:
    done = run("status", CAIRN_DATA_DIR=str(tmp_path / "none"))
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "CAIRN_REDIS_URL" in line and "cairn up" in line


async def test_commands_find_the_store_a_running_up_recorded(
    server: EmbeddedServer, keys: Keys, two_tasks: list[str], tmp_path: Path
) -> None:
    env = {"CAIRN_DATA_DIR": str(tmp_path), "CAIRN_PREFIX": keys.prefix,
           "CAIRN_PARTITIONS": str(keys.partitions)}  # fmt: skip
    with hold_data_dir(tmp_path) as held:
        held.record(api_url="http://127.0.0.1:1", redis_url=server.url)
        status = run("status", **env)
        assert status.returncode == 0, status.stderr
        assert "board projection lag: 3 events" in status.stdout
        # CAIRN_REDIS_URL still wins when it is set.
        elsewhere = run("status", CAIRN_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", **env)
        assert elsewhere.returncode == 2


def test_process_logs_carry_a_utc_timestamp_level_and_logger(
    server: EmbeddedServer, keys: Keys, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "api.log"
    env = {**os.environ, "CAIRN_REDIS_URL": server.url, "CAIRN_PREFIX": keys.prefix}
    with log.open("wb") as out:
        api = subprocess.Popen([sys.executable, "-m", "cairn.api.cli", "api", "--port", str(port)],
                               env=env, stdout=out, stderr=out)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"not http at all\r\n\r\n")  # uvicorn logs a warning
                    sock.recv(100)
                break
            except OSError:
                time.sleep(0.1)
        while time.monotonic() < deadline and "Invalid HTTP" not in log.read_text():
            time.sleep(0.1)
    finally:
        api.terminate()
        api.wait(10)
    stamped = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING uvicorn\.error: Invalid HTTP"
    assert re.search(stamped, log.read_text(), re.MULTILINE), log.read_text()
