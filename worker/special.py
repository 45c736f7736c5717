"""The execute stage of the jobs that are not agent steps: a container job (`docker run` of the
task's image over the checkout) and a manifest job (an index of its sources' text)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from cairn.domain.jobs.manifest import ManifestSource
from cairn.domain.jobs.repositories import resolve_repository
from cairn.worker.attempt import Attempt
from cairn.worker.container import DOCKER_ENV, container_argv, run_container
from cairn.worker.failures import Cancelled, StageFailed
from cairn.worker.gitops import Git, GitFailed
from cairn.worker.live import LiveOutput
from cairn.worker.manifest import SourceUnavailable, build_index, source_label, write_index
from cairn.worker.mirrors import Mirrors
from cairn.worker.process import Limits, minimal_env


async def run_container_job(run: Attempt, container: dict[str, Any]) -> dict[str, Any]:
    """The task's container as the one step: its env values reach docker only through the
    environment; cancel and timeouts also `docker kill` it."""
    assert run.workspace is not None
    ws, held, execution = run.workspace, run.held, run.execution
    variables = {str(k): str(v) for k, v in (container.get("env") or {}).items()}
    argv = container_argv(image=str(container["image"]), command=list(container["command"]),
                          workspace=ws, env_names=sorted(variables), job_id=run.job.id)  # fmt: skip
    env = minimal_env(ws.home, passthrough=DOCKER_ENV, extra=variables)
    log_path = ws.artifacts / "logs" / "container.log"
    live = LiveOutput(run.tools.output, run.job.id, 1, log_path, run.redactor,
                      execution.artifact_max_bytes)  # fmt: skip
    step_s = float(container.get("timeoutSeconds") or execution.step_timeout_s)
    limits = Limits(step_s=step_s, idle_s=execution.idle_timeout_s,
                    deadline=run.started + execution.job_timeout_s)  # fmt: skip
    try:
        result = await run_container(argv, job_id=run.job.id, cwd=ws.repo, env=env,
                                     on_output=live.feed, limits=limits,
                                     should_stop=held.cancel_requested,
                                     grace_s=run.tools.cancel_grace_s)  # fmt: skip
    finally:
        await live.close()
    await run.add_file("logs/container.log", log_path)
    if result.stopped == "cancelled":
        raise Cancelled({"stage": "execute", "step": "container"})
    if result.stopped is not None or result.exit_status != 0:
        what = result.stopped or f"exit status {result.exit_status}"
        error = {"code": result.stopped or "container_failed", "step": "container",
                 "message": f"the container ended with {what}",
                 "log_tail": live.tail[-2000:]}  # fmt: skip
        raise StageFailed("execute", error, retryable=True)
    return {"container": container["image"], "exit_status": result.exit_status}


async def run_manifest_job(run: Attempt) -> dict[str, Any]:
    """Index each source's text files (a repository through the mirror cache, or a local
    path where local repositories are allowed) into an artifact, with its counts."""
    assert run.workspace is not None
    ws, execution = run.workspace, run.execution
    manifest = run.job.normalized.get("manifest") or {}
    sources = [ManifestSource.model_validate(s) for s in manifest.get("sources") or []]
    checkouts = 0
    git: list[Git] = []  # made for the first repository source, shared by the others

    async def checkout(source: ManifestSource) -> Path:
        nonlocal checkouts
        if source.path is not None:
            if not execution.allow_local_repositories:
                raise SourceUnavailable(f"{source_label(source)}: local paths are off "
                                        "(CAIRN_ALLOW_LOCAL_REPOSITORIES)")  # fmt: skip
            return Path(source.path)
        checkouts += 1
        target = ws.root / f"source-{checkouts}"
        try:
            remote = resolve_repository(str(source.uri), git_base_url=execution.git_base_url,
                                        allow_local=execution.allow_local_repositories)  # fmt: skip
            git[:] = git or [run.git_for_sources()]
            await Mirrors(run.tools.mirrors_root, git[0]).checkout(remote, target)
        except (ValueError, GitFailed) as e:
            raise SourceUnavailable(f"{source_label(source)}: {e}") from e
        return target

    try:
        index = await build_index(sources, checkout=checkout)
    except SourceUnavailable as e:
        raise StageFailed("execute", {"code": e.code, "message": e.message},
                          retryable=True) from e  # fmt: skip
    path = ws.artifacts / "manifest_index.jsonl"
    await asyncio.to_thread(write_index, index, path)
    await run.add_file("manifest_index.jsonl", path)
    counts = index.counts.__dict__
    run.summary = (f"indexed {counts['files']} file(s) of {counts['sources']} source(s) into "
                   f"{counts['chunks']} chunk(s)")  # fmt: skip
    return {"counts": counts, "skipped": [list(s) for s in index.skipped[:50]]}
