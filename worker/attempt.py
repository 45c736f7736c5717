"""One attempt of a job on this worker: what every stage and handler reads and leaves (the job,
its fenced writes, the workspace, git, the branches, the redactor) and how it stores artifacts.
The stages themselves are in run.py, the execute stage's steps in steps.py."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.commands.jobs.held import Held
from cairn.commands.settings import Settings
from cairn.domain.jobs.branches import Branches
from cairn.domain.jobs.contract import WorkerDefaults
from cairn.domain.jobs.events import JobArtifactAdded
from cairn.domain.jobs.job import Job
from cairn.streams.artifacts import ArtifactStore, StoredArtifact
from cairn.streams.live import LiveChannels
from cairn.streams.output import OutputStream
from cairn.worker.agents.signin import AgentFound
from cairn.worker.gitops import Git, askpass_env
from cairn.worker.process import minimal_env
from cairn.worker.redaction import Redactor
from cairn.worker.sandbox import Sandbox, cli_folders
from cairn.worker.skills import SkillRef
from cairn.worker.workspace import Workspace, remove_workspace

TOKEN_VARIABLES = ("GH_TOKEN", "GITHUB_TOKEN")  # the worker's own, when a job names none


@dataclass(frozen=True)
class RunTools:
    """What every run on this worker shares."""

    settings: Settings
    defaults: WorkerDefaults
    output: OutputStream
    artifacts: ArtifactStore
    sandbox: Sandbox  # how agent steps run
    cancel_grace_s: float = 5.0
    agents: Mapping[str, AgentFound] = field(default_factory=dict)  # found at the worker's start
    live: LiveChannels | None = None  # live sessions' terminals, when this worker serves them

    @property
    def readable(self) -> list[Path]:
        """What a sandboxed step may read though a hidden folder holds it: the CLIs found and
        the PATH folders."""
        paths = {r: Path(f.path) if f.path else None for r, f in self.agents.items()}
        return cli_folders(paths, os.environ.get("PATH", ""))

    @property
    def mirrors_root(self) -> Path:
        return Path(self.settings.data_dir) / "mirrors"

    @property
    def skills_cache(self) -> Path:
        return Path(self.settings.data_dir) / "skills"


class Attempt:
    """One attempt of one job: its state as the stages leave it, and its artifacts."""

    def __init__(self, job: Job, held: Held, tools: RunTools) -> None:
        self.job, self.held, self.tools = job, held, tools
        self.execution = tools.settings.execution
        self.workspace: Workspace | None = None
        self.redactor = Redactor(env=os.environ)
        self.git: Git | None = None
        self.branches: Branches | None = None
        self.start_commit: str | None = None
        self.remote_url: str | None = None  # origin's, as prepare set it
        self.skills: list[SkillRef] = []
        self.publish_token: str | None = None
        self.summary = ""
        self.publish_outcome: str | None = None
        self.started = asyncio.get_running_loop().time()

    @property
    def task(self) -> dict[str, Any]:
        task: dict[str, Any] = self.job.normalized.get("task") or {}
        return task

    def git_for_sources(self) -> Git:
        """Git for a manifest job's sources (no checkout of its own): the worker's token."""
        assert self.workspace is not None
        token = worker_token()
        if token:
            self.redactor = Redactor([token], env=os.environ)
        env = minimal_env(self.workspace.home, extra=askpass_env(self.workspace.home, token))
        return Git(env=env, redact=self.redactor.redact)

    # ---- artifacts ------------------------------------------------------------------------

    async def add_file(self, path: str, source: Path) -> StoredArtifact:
        """Store a file as an artifact; its event goes out with the next write."""
        stored = await asyncio.to_thread(
            self.tools.artifacts.put_file, self.job.id, self.job.attempt, path, source
        )
        self.held.hold_back([self._added(stored)])
        return stored

    async def add_json(self, path: str, document: Any) -> StoredArtifact:
        text = self.redactor.redact(json.dumps(document, indent=2, default=str))
        stored = await asyncio.to_thread(
            self.tools.artifacts.put_bytes, self.job.id, self.job.attempt, path, text.encode()
        )
        self.held.hold_back([self._added(stored)])
        return stored

    def _added(self, stored: StoredArtifact) -> JobArtifactAdded:
        return JobArtifactAdded(
            epoch=self.held.epoch, name=stored.name,
            ref=f"/api/queue/jobs/{self.job.id}/artifacts/{stored.path}", size=stored.size,
            sha256=stored.sha256, path=stored.path, content_type=stored.content_type,
            truncated=stored.truncated,
        )  # fmt: skip

    def close(self) -> None:
        if self.workspace is not None and not self.execution.keep_workspaces:
            remove_workspace(self.workspace)


def worker_token() -> str | None:
    """The worker's own token for git and gh, when a job names no auth reference."""
    return next((os.environ[v] for v in TOKEN_VARIABLES if os.environ.get(v)), None)
