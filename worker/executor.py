"""Running one claimed job in stages: prepare (a scratch directory), execute (the runtime's CLI,
the instructions as its last argument), publish. Each stage is reported as it starts and ends;
between stages the worker checks it still holds the job and whether a cancel or a pause came."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.domain.contract import WorkerDefaults, resolve_runtime
from cairn.domain.credentials import redact_credentials
from cairn.domain.job import Job

# How each runtime's CLI runs one prompt non-interactively; the prompt is the last argument.
ADAPTERS: dict[str, tuple[list[str], str]] = {
    "codex": (["codex", "exec"], "-m"),
    "claude": (["claude", "-p"], "--model"),
    "gemini": (["gemini", "-p"], "-m"),
}
LOG_TAIL = 2000


class StageFailed(Exception):
    """A stage failed; `error` goes into the job's outcome, `retryable` decides a retry."""

    def __init__(self, stage: str, error: dict[str, Any], *, retryable: bool = True) -> None:
        super().__init__(error.get("message", stage))
        self.stage, self.error, self.retryable = stage, error, retryable


class Cancelled(Exception):
    """The job's cancel was requested while it ran."""


@dataclass
class Run:
    """One attempt of a job on this worker."""

    job: Job
    scratch: Path | None = None
    artifacts: list[tuple[str, str]] = field(default_factory=list)
    publish_outcome: str | None = None
    summary: str = ""


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    artifacts_dir: Path
    defaults: WorkerDefaults = field(default_factory=WorkerDefaults)
    cancel_poll_s: float = 1.0


Checkpoint = Callable[[], Awaitable[bool]]  # True when a cancel was requested


def waits(stage: str, job: Job) -> bool:
    """Whether a stage may take a while (so what led up to it is written first)."""
    return stage == "execute" and not (job.job_type == "noop" and not job.normalized.get("sleepMs"))


async def prepare(run: Run, config: ExecutorConfig) -> dict[str, Any]:
    """A scratch directory for jobs that run a CLI; a noop job needs nothing."""
    if run.job.job_type == "noop":
        return {}
    run.scratch = Path(tempfile.mkdtemp(prefix=f"cairn-{run.job.id}-"))
    return {"scratch": str(run.scratch)}


async def execute(run: Run, config: ExecutorConfig, cancelled: Checkpoint) -> dict[str, Any]:
    job = run.job
    if job.job_type == "noop":
        await _sleep_unless_cancelled(job.normalized.get("sleepMs", 0) / 1000, cancelled, config)
        run.summary = "noop"
        return {"handler": "noop"}
    if job.job_type != "task":
        raise StageFailed(
            "execute",
            {
                "code": "no_handler",
                "message": f"this worker has no handler for {job.job_type} jobs yet",
            },
            retryable=False,
        )
    runtime = resolve_runtime(job.normalized, config.defaults)
    if runtime.mode not in ADAPTERS:
        raise StageFailed(
            "execute",
            {
                "code": "no_runtime",
                "message": f"runtime {runtime.mode} has no CLI adapter; set a runtime mode",
            },
            retryable=False,
        )
    base, model_flag = ADAPTERS[runtime.mode]
    if shutil.which(base[0]) is None:
        raise StageFailed(
            "execute", {"code": "cli_missing", "message": f"{base[0]} is not on this worker's PATH"}
        )
    argv = [*base, *([model_flag, runtime.model] if runtime.model else []), _instructions(job)]
    log_path = _artifact_path(run, config, "execute.log")
    code = await _run_cli(argv, run.scratch or Path.cwd(), log_path, cancelled, config)
    run.artifacts.append(("execute.log", log_path.as_uri()))
    detail = {"cli": base[0], "exit_status": code, "model": runtime.model}
    if code != 0:
        tail = log_path.read_text(errors="replace")[-LOG_TAIL:]
        raise StageFailed(
            "execute",
            {
                "code": "exit_status",
                "message": f"{base[0]} exited with status {code}",
                "log_tail": tail,
                **detail,
            },
        )
    run.summary = f"{base[0]} exited 0"
    return detail


async def publish(run: Run, config: ExecutorConfig) -> tuple[str, dict[str, Any]]:
    """Publishing (branch, commit, push, PR) lands with the execution stages; until then the
    outcome says plainly that nothing was published."""
    mode = ((run.job.normalized.get("task") or {}).get("publish") or {}).get("mode", "none")
    if run.job.job_type != "task" or mode == "none":
        run.publish_outcome = "none"
        return "skipped", {"mode": mode}
    run.publish_outcome = "not_published"
    return "skipped", {"mode": mode, "reason": "publishing is not implemented in this worker yet"}


def cleanup(run: Run) -> None:
    if run.scratch is not None:
        shutil.rmtree(run.scratch, ignore_errors=True)


def _instructions(job: Job) -> str:
    task = job.normalized.get("task") or {}
    parts = [task.get("instructions") or ""]
    for step in task.get("steps") or []:
        if step.get("instructions"):
            parts.append(f"{step.get('id')}: {step['instructions']}")
    return "\n\n".join(p for p in parts if p)


def _artifact_path(run: Run, config: ExecutorConfig, name: str) -> Path:
    folder = config.artifacts_dir / run.job.id / f"attempt-{run.job.attempt}"
    folder.mkdir(parents=True, exist_ok=True)
    return (folder / name).resolve()


async def _run_cli(
    argv: list[str], cwd: Path, log: Path, cancelled: Checkpoint, config: ExecutorConfig
) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    reader = asyncio.create_task(process.stdout.read())
    try:
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), config.cancel_poll_s)
                break
            except TimeoutError:
                if await cancelled():
                    raise Cancelled() from None
    finally:
        if process.returncode is None:  # the CLI and everything it started
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        output = await reader
        # Whatever the CLI printed, no credential goes into an artifact.
        log.write_text(redact_credentials(output.decode(errors="replace")))
    return int(process.returncode or 0)


async def _sleep_unless_cancelled(
    seconds: float, cancelled: Checkpoint, config: ExecutorConfig
) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        await asyncio.sleep(min(left, config.cancel_poll_s))
        if left > config.cancel_poll_s and await cancelled():
            raise Cancelled()
