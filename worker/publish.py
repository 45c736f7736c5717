"""The publish stage: the only git writes of a run. The verification gate, one commit on the
working branch (author from settings, trailers naming the job and who asked), one push, and in
`pr` mode `gh pr create`. Every text that leaves the worker goes through the redactor first."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cairn.domain.jobs.branches import Branches
from cairn.domain.jobs.events import PublishOutcome
from cairn.domain.jobs.publishing import Evidence, commit_message, verification_gate
from cairn.worker.gitops import STDERR_KEPT, Git, GitFailed

_URL = re.compile(r"https?://\S+")


Outcome = PublishOutcome  # the publish stage's results are the job's publish outcomes


@dataclass(frozen=True)
class PublishContext:
    """What publishing needs. `commit_message` is the payload's (None: Cairn writes one);
    `start_commit`, when given, makes commits the agent made itself count as changes;
    `remote_url`, when given, must still be origin's (a run could have pointed it elsewhere)."""

    git: Git
    repo: Path
    mode: str  # "none", "branch" or "pr"
    branches: Branches
    job_id: str
    actor: str
    commit_message: str | None
    pr_title: str
    pr_body: str
    pr_base: str | None
    author_name: str
    author_email: str
    changed_paths: Sequence[str]
    evidence: Sequence[Evidence]
    skip_reason: Mapping[str, str] | None
    gh_env: Mapping[str, str]
    redact: Callable[[str], str] = lambda s: s
    start_commit: str | None = None
    remote_url: str | None = None
    gh_timeout_s: float = 300.0
    open_pr: str | None = None  # a pull request open from the working branch (a follow-up's)


@dataclass(frozen=True)
class PublishResult:
    outcome: str
    branch: str | None = None
    pr_url: str | None = None
    commit: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


async def publish(ctx: PublishContext) -> PublishResult:
    """Publish the run's changes as `ctx.mode` says; a refusal or failure is a FAILED result
    saying why (never an exception for git or gh failing)."""
    if ctx.mode == "none":
        return PublishResult(Outcome.PUBLISH_DISABLED, detail={"mode": "none"})
    if ctx.mode not in ("branch", "pr"):
        return _failed(f"unknown publish mode {ctx.mode!r}; one of none, branch, pr", {})
    head = ctx.branches.working
    base = (
        (ctx.pr_base or ctx.branches.starting or ctx.branches.default) if ctx.mode == "pr" else None
    )
    detail: dict[str, Any] = {"mode": ctx.mode, "branch": head, "base": base}
    if base is not None and base == head:
        return _failed(
            f"the pull request would merge '{head}' into itself: the run works on '{head}'; "
            "set task.git.newBranch, or publish.prBaseBranch to the branch to merge into",
            detail,
        )
    try:
        if not await _has_changes(ctx):
            if ctx.mode == "pr" and ctx.open_pr is not None:
                # A follow-up on an open PR that changed nothing says so there, not by a push.
                return await _said_on_pr(ctx, ctx.open_pr, detail)
            return PublishResult(Outcome.NO_CHANGES, detail=detail)
        gate = verification_gate(
            changed_paths=ctx.changed_paths, evidence=ctx.evidence, skip_reason=ctx.skip_reason
        )
        detail["gate"] = asdict(gate)
        if not gate.allowed:
            return _failed(gate.reason, detail)
        if ctx.remote_url is not None and not await _origin_unchanged(ctx):
            reason = "origin no longer points at the job's repository (changed during the run)"
            return _failed(reason, detail)
        commit = await _commit(ctx, head)
        await ctx.git.push(ctx.repo, head)
    except GitFailed as e:
        failure = {"command": e.command, "exit_status": e.exit_status, "stderr": e.stderr}
        return _failed(str(e), {**detail, **failure})
    if ctx.mode == "branch":
        return PublishResult(Outcome.PUBLISHED_BRANCH, branch=head, commit=commit, detail=detail)
    assert base is not None
    if ctx.open_pr is not None:
        # A follow-up: its push is on the branch of the pull request the first run opened.
        return PublishResult(Outcome.PUBLISHED_PR, branch=head, pr_url=ctx.open_pr,
                             commit=commit, detail={**detail, "updated": True})  # fmt: skip
    return await _open_pr(ctx, base, head, commit, detail)


async def _has_changes(ctx: PublishContext) -> bool:
    status = await ctx.git.run("status", "--porcelain", "--untracked-files=all", cwd=ctx.repo)
    if status.stdout.strip():
        return True
    head = (await ctx.git.run("rev-parse", "HEAD", cwd=ctx.repo)).stdout.strip()
    return ctx.start_commit is not None and head != ctx.start_commit


async def _origin_unchanged(ctx: PublishContext) -> bool:
    url = await ctx.git.run("remote", "get-url", "--push", "origin", cwd=ctx.repo)
    return url.stdout.strip() == ctx.remote_url


async def _commit(ctx: PublishContext, branch: str) -> str:
    # -B carries the uncommitted changes onto the working branch (a new one, or the start).
    await ctx.git.run("checkout", "--quiet", "-B", branch, cwd=ctx.repo)
    message = ctx.redact(commit_message(ctx.commit_message, ctx.job_id, ctx.actor, ctx.pr_title))
    sha = await ctx.git.commit_all(
        ctx.repo, message=message, author_name=ctx.author_name, author_email=ctx.author_email
    )
    # None: the agent committed everything itself (start_commit told us so); push its HEAD.
    return sha or (await ctx.git.run("rev-parse", "HEAD", cwd=ctx.repo)).stdout.strip()


async def _open_pr(
    ctx: PublishContext, base: str, head: str, commit: str, detail: dict[str, Any]
) -> PublishResult:
    title, body = ctx.redact(ctx.pr_title), ctx.redact(ctx.pr_body)
    argv = ["gh", "pr", "create", "--base", base, "--head", head, "--title", title]
    command = ctx.redact(" ".join([*argv, "--body", f"<{len(body)} characters>"]))
    try:
        status, out, err = await _run(
            [*argv, "--body", body], ctx.repo, ctx.gh_env, ctx.gh_timeout_s
        )
    except FileNotFoundError:
        message = "gh is not installed on this worker (not on its PATH); `pr` mode needs it"
        return _failed(message, {**detail, "command": command}, head, commit)
    stderr = ctx.redact(err)[-STDERR_KEPT:]
    failure = {**detail, "command": command, "exit_status": status, "stderr": stderr}
    if status != 0:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        return _failed(f"gh pr create failed (exit {status}): {last}", failure, head, commit)
    urls = [m[0] for line in out.splitlines() if (m := _URL.search(line))]
    if not urls:
        return _failed("gh pr create printed no pull request URL", failure, head, commit)
    return PublishResult(
        Outcome.PUBLISHED_PR, branch=head, pr_url=urls[-1], commit=commit, detail=detail
    )


async def _said_on_pr(ctx: PublishContext, url: str, detail: dict[str, Any]) -> PublishResult:
    """A comment on the PR: this follow-up ran and changed nothing (gh pr comment)."""
    body = ctx.redact(f"Cairn's follow-up {ctx.job_id} ran and changed nothing, so nothing was "
                      "pushed. Its run page has what the agent said.")  # fmt: skip
    argv = ["gh", "pr", "comment", url, "--body", body]
    try:
        status, _, err = await _run(argv, ctx.repo, ctx.gh_env, ctx.gh_timeout_s)
    except FileNotFoundError:
        status, err = -1, "gh is not installed on this worker"
    commented = {**detail, "commented": status == 0, "pr_url": url}
    if status != 0:
        commented["comment_error"] = ctx.redact(err)[-STDERR_KEPT:]
    return PublishResult(Outcome.NO_CHANGES, detail=commented)


async def _run(
    argv: list[str], cwd: Path, env: Mapping[str, str], timeout_s: float
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=dict(env), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except (TimeoutError, asyncio.CancelledError) as e:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.shield(proc.wait())
        if isinstance(e, asyncio.CancelledError):
            raise
        return -1, "", f"timed out after {timeout_s:g} s"
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def _failed(
    reason: str, detail: dict[str, Any], branch: str | None = None, commit: str | None = None
) -> PublishResult:
    return PublishResult(
        Outcome.FAILED, branch=branch, commit=commit, detail={**detail, "reason": reason}
    )
