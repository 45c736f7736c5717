"""Container jobs against a fake `docker` first on PATH (a small script that records its
arguments and environment): the command line, values only in the environment, and a cancel
that ends in `docker kill cairn-<job id>`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cairn.worker.container import container_argv, run_container, stop_container
from cairn.worker.process import Limits, minimal_env

JOB = "01JD8ZQ3J0PVK6T3W8XG2M4N5R"
ROOMY = Limits(step_s=30, idle_s=30, deadline=None)
FAKE_DOCKER = """\
#!/bin/bash
# A stand-in for the docker CLI: records what it was asked, then acts a little.
log={log}
case "$1" in
  run)
    printf '%s\\n' "$@" > "$log/argv"
    env > "$log/env"
    echo "container says hi"
    if [ "${@: -1}" = hang ]; then touch "$log/started"; exec sleep 300; fi
    exit 7 ;;
  kill)
    echo "$2" >> "$log/kills"
    [ "$2" = cairn-missing ] && { echo "Error: No such container: $2" >&2; exit 1; }
    exit 0 ;;
esac
exit 2
"""


@dataclass(frozen=True)
class Paths:
    repo: Path
    artifacts: Path


@pytest.fixture
def docker_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir, log = tmp_path / "bin", tmp_path / "docker-log"
    bin_dir.mkdir()
    log.mkdir()
    fake = bin_dir / "docker"
    fake.write_text(FAKE_DOCKER.replace("{log}", str(log)))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def paths(tmp_path: Path) -> Paths:
    return Paths(repo=tmp_path / "work" / "repo", artifacts=tmp_path / "work" / "artifacts")


def test_the_docker_command_line(tmp_path: Path) -> None:
    argv = container_argv(image="python:3.12-slim", command=["pytest", "-q"],
                          workspace=paths(tmp_path), env_names=["API_TOKEN", "MODE"],
                          job_id=JOB)  # fmt: skip
    work = tmp_path / "work"
    assert argv == [
        "docker", "run", "--rm", "--init", "--name", f"cairn-{JOB}",
        "-v", f"{work}/repo:/workspace", "-w", "/workspace", "-v", f"{work}/artifacts:/artifacts",
        "-e", "CAIRN_ARTIFACTS_DIR=/artifacts", "-e", f"CAIRN_JOB_ID={JOB}",
        "-e", "API_TOKEN", "-e", "MODE", "python:3.12-slim", "pytest", "-q",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [({"job_id": "../x"}, "cannot name a container"),
     ({"image": "--privileged"}, "not an image reference"),
     ({"env_names": ["A=B"]}, "cannot be passed"),
     ({"env_names": ["CAIRN_JOB_ID"]}, "cannot be passed"),
     ({"workspace": Paths(Path("relative"), Path("/a"))}, "must be absolute"),
     ({"workspace": Paths(Path("/a:b"), Path("/a"))}, "hold no ':'")],
)  # fmt: skip
def test_what_cannot_go_into_a_docker_command_line(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    given: dict[str, object] = {"image": "alpine", "command": ["true"], "env_names": [],
                                "workspace": paths(tmp_path), "job_id": JOB, **change}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        container_argv(**given)  # type: ignore[arg-type]


async def run(
    tmp_path: Path, command: list[str], should_stop: Callable[[], Awaitable[bool]]
) -> tuple[int | None, str | None, str]:
    out: list[str] = []

    async def collect(text: str) -> None:
        out.append(text)

    argv = container_argv(image="alpine", command=command, workspace=paths(tmp_path),
                          env_names=["API_TOKEN"], job_id=JOB)  # fmt: skip
    env = minimal_env(tmp_path / "home", extra={"API_TOKEN": "tok-secret-value-42"})
    result = await run_container(argv, job_id=JOB, cwd=tmp_path, env=env, on_output=collect,
                                 limits=ROOMY, should_stop=should_stop, grace_s=1.0)  # fmt: skip
    return result.exit_status, result.stopped, "".join(out)


async def never() -> bool:
    return False


async def test_a_value_reaches_docker_through_its_environment_only(
    tmp_path: Path, docker_log: Path
) -> None:
    status, stopped, out = await run(tmp_path, ["echo", "hi"], never)
    assert (status, stopped, out) == (7, None, "container says hi\n")
    argv = (docker_log / "argv").read_text()
    assert "API_TOKEN\n" in argv and "tok-secret-value-42" not in argv
    assert "API_TOKEN=tok-secret-value-42" in (docker_log / "env").read_text()
    assert not (docker_log / "kills").exists()  # a run that ended by itself needs no kill


async def test_a_cancelled_run_is_killed_by_name(tmp_path: Path, docker_log: Path) -> None:
    async def cancel_once_started() -> bool:
        return (docker_log / "started").exists()

    status, stopped, _ = await asyncio.wait_for(run(tmp_path, ["hang"], cancel_once_started), 20)
    assert (status, stopped) == (-15, "cancelled")
    assert (docker_log / "kills").read_text() == f"cairn-{JOB}\n"


async def test_stop_container_says_whether_there_was_one(docker_log: Path) -> None:
    assert await stop_container(JOB) is True
    assert await stop_container("missing") is False
    assert (docker_log / "kills").read_text() == f"cairn-{JOB}\ncairn-missing\n"
