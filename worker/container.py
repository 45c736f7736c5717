"""Container jobs: the job's command in `docker run`, with the checkout at /workspace and the
job's artifacts folder at /artifacts (https://docs.docker.com/reference/cli/docker/container/run/).

Environment values reach the container through the docker CLI's own environment: `-e NAME`
without a value takes NAME's value from it, so no value is ever in argv, where `ps` shows it.
`--init` puts a small init first in the container, which passes the SIGTERM of a stop on to the
command and reaps its children. A cancelled run also gets `docker kill`: a docker CLI killed
after the grace leaves its container running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from cairn.worker.process import Limits, ProcessResult, run_process

log = logging.getLogger("cairn.worker.container")

# What the docker CLI itself reads to find its daemon; pass these through to it.
DOCKER_ENV = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
              "DOCKER_TLS_VERIFY")  # fmt: skip
KILL_TIMEOUT_S = 30.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SET_BY_CAIRN = frozenset({"CAIRN_ARTIFACTS_DIR", "CAIRN_JOB_ID"})


class ContainerPaths(Protocol):
    """What of a workspace a container sees (worker/workspace.Workspace has these)."""

    @property
    def repo(self) -> Path: ...

    @property
    def artifacts(self) -> Path: ...


def container_name(job_id: str) -> str:
    if not _NAME.fullmatch(job_id):
        raise ValueError(f"job id {job_id[:64]!r} cannot name a container")
    return f"cairn-{job_id}"


def container_argv(
    *,
    image: str,
    command: Sequence[str],
    workspace: ContainerPaths,
    env_names: Sequence[str],
    job_id: str,
) -> list[str]:
    """`docker run` for a job. The contract's ContainerSpec has no cpu or memory limits, so
    none are set here; its timeout_seconds belongs in the run's Limits."""
    if not image or image.startswith("-") or any(c.isspace() for c in image):
        raise ValueError(f"image {image[:64]!r} is not an image reference")
    for name in env_names:
        if not _VARIABLE.fullmatch(name) or name in _SET_BY_CAIRN:
            raise ValueError(f"{name[:64]!r} cannot be passed to a container as a variable")
    mounts = []
    for path, target in ((workspace.repo, "/workspace"), (workspace.artifacts, "/artifacts")):
        # -v splits its value at ':'; an absolute path keeps it from naming a volume.
        if not path.is_absolute() or ":" in str(path):
            raise ValueError(f"{path} cannot be mounted: it must be absolute and hold no ':'")
        mounts += ["-v", f"{path}:{target}"]
    return [
        "docker", "run", "--rm", "--init", "--name", container_name(job_id),
        *mounts[:2], "-w", "/workspace", *mounts[2:],
        "-e", "CAIRN_ARTIFACTS_DIR=/artifacts", "-e", f"CAIRN_JOB_ID={job_id}",
        *(arg for name in env_names for arg in ("-e", name)),
        image, *command,
    ]  # fmt: skip


async def run_container(
    argv: Sequence[str],
    *,
    job_id: str,
    cwd: Path,
    env: Mapping[str, str],
    on_output: Callable[[str], Awaitable[None]],
    limits: Limits,
    should_stop: Callable[[], Awaitable[bool]],
    grace_s: float = 5.0,
) -> ProcessResult:
    """run_process for `docker run`, and `docker kill` when it was stopped (or this failed)."""
    try:
        result = await run_process(argv, cwd=cwd, env=env, on_output=on_output, limits=limits,
                                   should_stop=should_stop, grace_s=grace_s)  # fmt: skip
    except BaseException:
        await asyncio.shield(stop_container(job_id, env=env))
        raise
    if result.stopped is not None:
        await stop_container(job_id, env=env)
    return result


async def stop_container(job_id: str, *, env: Mapping[str, str] | None = None) -> bool:
    """`docker kill cairn-<job id>`: True if a container was killed, False if there was none
    running (or docker could not be asked; logged)."""
    if env is None:
        names = ("PATH", "HOME", *DOCKER_ENV)
        env = {name: os.environ[name] for name in names if name in os.environ}
    name = container_name(job_id)
    try:
        process = await asyncio.create_subprocess_exec(
            "docker", "kill", name, env=dict(env), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    except OSError as e:
        log.warning("could not run docker kill %s: %s", name, e.strerror or e)
        return False
    try:
        output, _ = await asyncio.wait_for(process.communicate(), KILL_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        log.warning("docker kill %s did not answer within %.0f s", name, KILL_TIMEOUT_S)
        return False
    if process.returncode != 0:
        # Usually "No such container": it had ended (and --rm removed it) already.
        log.info("docker kill %s: %s", name, output.decode(errors="replace").strip()[:200])
    return process.returncode == 0
