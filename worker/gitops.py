"""git as subprocesses: snapshots, diffs, commit, push; credentials only through GIT_ASKPASS.

Every git gets the environment it is given (a minimal one, never the worker's) plus FIXED_ENV:
no system or global config, no terminal prompt, and no repository hooks or fsmonitor, since
the agent that ran in the checkout could have written them and git must not run its code (so
the checkout may be the sandbox user's: safe.directory).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

STDERR_KEPT = 4096
TOKEN_VAR = "CAIRN_GIT_TOKEN"
USERNAME_VAR = "CAIRN_GIT_USERNAME"
_OVERRIDES = {
    "core.hooksPath": "/dev/null",
    "core.fsmonitor": "false",
    "gc.autoDetach": "false",  # gc after a fetch runs under the mirror's lock, not after it
    "maintenance.autoDetach": "false",
    "advice.detachedHead": "false",
    # A sandboxed step runs as another user than a root worker (worker/sandbox.py): the
    # checkout is that user's, and git would refuse it as of "dubious ownership".
    "safe.directory": "*",
}
FIXED_ENV: dict[str, str] = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_COUNT": str(len(_OVERRIDES)),
    **{f"GIT_CONFIG_KEY_{i}": key for i, key in enumerate(_OVERRIDES)},
    **{f"GIT_CONFIG_VALUE_{i}": value for i, value in enumerate(_OVERRIDES.values())},
}
# Git asks for a user name, then a password: both come from the environment, never argv.
ASKPASS = f"""#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "${{{USERNAME_VAR}:-x-access-token}}" ;;
  *) printf '%s\\n' "${TOKEN_VAR}" ;;
esac
"""


class GitFailed(Exception):
    """A git command failed: `command` (argv, redacted), `exit_status` (-1: it timed out) and
    the last 4 KB of its stderr, redacted."""

    def __init__(
        self, command: str, exit_status: int, stderr: str, message: str | None = None
    ) -> None:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(message or f"`{command}` failed (exit {exit_status}): {last}")
        self.command = command
        self.exit_status = exit_status
        self.stderr = stderr


@dataclass(frozen=True)
class GitResult:
    exit_status: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Diff:
    patch: str
    files: int
    insertions: int
    deletions: int
    paths: list[str] = field(default_factory=list)
    numstat: list[tuple[str, int | None, int | None]] = field(default_factory=list)  # per file


def askpass_env(home: Path, token: str | None, *, username: str | None = None) -> dict[str, str]:
    """Variables that let git authenticate with `token`: an askpass script in `home` (0700)
    that prints it from the environment. The token is in no URL, argv or file."""
    if token is None:
        return {"GIT_TERMINAL_PROMPT": "0"}
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    script = home / "git-askpass.sh"
    script.write_text(ASKPASS)
    script.chmod(0o700)
    env = {"GIT_ASKPASS": str(script), "GIT_TERMINAL_PROMPT": "0", TOKEN_VAR: token}
    if username:
        env[USERNAME_VAR] = username
    return env


class Git:
    """Runs git with a fixed environment; failures raise GitFailed with redacted text."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        redact: Callable[[str], str] = lambda s: s,
        timeout_s: float = 600,
    ) -> None:
        self.env = {**env, **FIXED_ENV}
        self.redact = redact
        self.timeout_s = timeout_s

    async def run(
        self,
        *args: str,
        cwd: Path,
        check: bool = True,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> GitResult:
        """Run `git <args>` in `cwd` (`env` adds to the fixed environment); raise GitFailed on
        a non-zero exit when `check`, and always on a timeout."""
        command = self.redact(shlex.join(["git", *args]))
        proc = await asyncio.create_subprocess_exec(
            "git", *args, cwd=cwd, env={**self.env, **(env or {})},
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own group: a timeout ends its helpers too
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), self.timeout_s)
        except (TimeoutError, asyncio.CancelledError) as e:
            _kill_group(proc)
            await asyncio.shield(proc.wait())
            if isinstance(e, asyncio.CancelledError):
                raise
            message = f"`{command}` timed out after {self.timeout_s:g} s"
            raise GitFailed(command, -1, "", message) from None
        stderr = self.redact(err.decode(errors="replace"))[-STDERR_KEPT:]
        result = GitResult(proc.returncode or 0, out.decode(errors="replace"), stderr)
        if check and result.exit_status != 0:
            raise GitFailed(command, result.exit_status, stderr)
        return result

    async def snapshot(self, repo: Path) -> str:
        """A tree id of the working tree (untracked files too, .gitignore honoured), written
        through a temporary index: the checkout's index and history are left as they were."""
        git_dir = Path((await self.run("rev-parse", "--absolute-git-dir", cwd=repo)).stdout.strip())
        index = git_dir / f"cairn-snapshot-{uuid.uuid4().hex}.index"
        try:
            if (git_dir / "index").exists():  # its stat data spares hashing unchanged files
                shutil.copyfile(git_dir / "index", index)
            env = {"GIT_INDEX_FILE": str(index)}
            await self.run("add", "--all", cwd=repo, env=env)
            return (await self.run("write-tree", cwd=repo, env=env)).stdout.strip()
        finally:
            index.unlink(missing_ok=True)

    async def diff(self, repo: Path, base: str, head: str) -> Diff:
        """The patch and its numbers between two tree-ish (binary files: no lines counted)."""
        options = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-renames")
        patch = await self.run("diff", *options, "--binary", base, head, "--", cwd=repo)
        stat = await self.run("diff", *options, "--numstat", "-z", base, head, "--", cwd=repo)
        insertions = deletions = 0
        paths: list[str] = []
        numstat: list[tuple[str, int | None, int | None]] = []
        for entry in filter(None, stat.stdout.split("\0")):
            added, removed, path = entry.split("\t", 2)
            insertions += int(added) if added.isdigit() else 0
            deletions += int(removed) if removed.isdigit() else 0
            paths.append(path)
            numstat.append((path, int(added) if added.isdigit() else None,
                            int(removed) if removed.isdigit() else None))  # fmt: skip
        return Diff(patch.stdout, len(paths), insertions, deletions, paths, numstat)

    async def commit_all(
        self, repo: Path, *, message: str, author_name: str, author_email: str
    ) -> str | None:
        """Stage everything and commit it as the given author; the new sha, or None if
        nothing changed. The identity comes from here, so a worker needs no git config."""
        await self.run("add", "--all", cwd=repo)
        staged = await self.run("diff", "--cached", "--quiet", cwd=repo, check=False)
        if staged.exit_status == 0:
            return None
        if staged.exit_status != 1:
            raise GitFailed("git diff --cached --quiet", staged.exit_status, staged.stderr)
        identity = {
            "GIT_AUTHOR_NAME": author_name, "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": author_name, "GIT_COMMITTER_EMAIL": author_email,
        }  # fmt: skip
        # whitespace cleanup keeps lines starting with '#' (strip would drop them)
        await self.run(
            "commit", "--quiet", "--no-verify", "--cleanup=whitespace", "--file=-",
            cwd=repo, input=message.encode(), env=identity,
        )  # fmt: skip
        return (await self.run("rev-parse", "HEAD", cwd=repo)).stdout.strip()

    async def push(self, repo: Path, branch: str) -> None:
        """Push HEAD to `branch` on origin; a rejected push raises GitFailed. Credential
        helpers the checkout's config may name are reset: only GIT_ASKPASS answers."""
        await self.run(
            "-c", "credential.helper=", "push", "--no-verify", "--porcelain", "origin",
            f"HEAD:refs/heads/{branch}", cwd=repo,
        )  # fmt: skip

    async def default_branch(self, repo: Path) -> str:
        """origin's default branch: origin/HEAD, else what the remote says, else `main`."""
        ref = "refs/remotes/origin/HEAD"
        head = await self.run("symbolic-ref", "--quiet", "--short", ref, cwd=repo, check=False)
        if head.exit_status == 0 and head.stdout.strip():
            return head.stdout.strip().removeprefix("origin/")
        shown = await self.run("remote", "show", "origin", cwd=repo, check=False)
        match = re.search(r"HEAD branch: (\S+)", shown.stdout)
        if shown.exit_status == 0 and match and match[1] != "(unknown)":
            return match[1]
        return "main"


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
