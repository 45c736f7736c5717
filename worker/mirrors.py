"""The bare mirror cache and a job's checkout from it.

One bare mirror per remote (`<root>/<hash of its URL>.git`): cloned once, fetched before each
job, under a lock per mirror (flock, so jobs in other worker processes wait too). A job's
checkout is a local clone of the mirror, its objects hard links (cheap), with `origin` set back
to the real remote: the network cost of a repository is paid once per host.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from cairn.domain.jobs.repositories import Remote
from cairn.worker.gitops import Git, GitFailed
from cairn.worker.workspace import remove_tree

log = logging.getLogger("cairn.worker")
LOCK_POLL_S = (0.01, 0.25)  # first and longest wait between tries of a busy lock
# How long a job waits for another's fetch of the same repository before cloning on its own.
LOCK_WAIT_S = 120.0


@dataclass(frozen=True)
class Checkout:
    default_branch: str
    head: str
    fetched: bool  # False: the mirror was cloned for this checkout
    seconds: float


class Mirrors:
    """The mirror cache under `root`, shared by every job (and worker process) on the host."""

    def __init__(self, root: Path, git: Git, *, lock_wait_s: float = LOCK_WAIT_S) -> None:
        self.root = root.resolve()  # git runs in other folders: a relative root would move
        self.git = git
        self.lock_wait_s = lock_wait_s

    def mirror_path(self, remote: Remote) -> Path:
        return self.root / f"{_key(remote)}.git"

    async def checkout(
        self, remote: Remote, repo_dir: Path, *, branch: str | None = None
    ) -> Checkout:
        """Bring the mirror up to date and check `branch` (default: the remote's default
        branch) out into the empty folder `repo_dir`."""
        started = time.monotonic()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        mirror = self.mirror_path(remote)
        try:
            async with _locked(self.root / f"{_key(remote)}.lock", self.lock_wait_s):
                fetched = mirror.exists()
                if fetched:
                    await self._fetch(remote, mirror)
                else:
                    await self._clone(remote, mirror)
                # Still under the lock: a concurrent fetch may prune or repack what is linked.
                await self._git(remote, "could not check out", "clone", "--local",
                                "--no-checkout", "--quiet", str(mirror), str(repo_dir),
                                cwd=self.root)  # fmt: skip
        except MirrorBusy:
            # Whoever holds the mirror is stuck (a stopped worker, a hung fetch): this job
            # pays for a clone of its own rather than waiting on it.
            log.warning("the mirror of %s is busy past %ss: cloning directly", remote.display,
                        self.lock_wait_s)  # fmt: skip
            fetched = False
            await self._git(remote, "could not clone", "clone", "--no-checkout", "--quiet",
                            remote.url, str(repo_dir), cwd=self.root)  # fmt: skip
        await self.git.run("remote", "set-url", "origin", remote.url, cwd=repo_dir)
        default = await self.git.default_branch(repo_dir)
        wanted = branch or default
        ref = f"refs/remotes/origin/{wanted}"
        known = await self.git.run(
            "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo_dir, check=False
        )
        if known.exit_status != 0:
            message = f"branch '{wanted}' does not exist in {remote.display}"
            raise GitFailed(f"git rev-parse --verify {ref}", known.exit_status, "", message)
        await self.git.run("checkout", "--quiet", "--force", "-B", wanted, ref, cwd=repo_dir)
        head = (await self.git.run("rev-parse", "HEAD", cwd=repo_dir)).stdout.strip()
        return Checkout(default, head, fetched, time.monotonic() - started)

    async def _clone(self, remote: Remote, mirror: Path) -> None:
        # Cloned beside and renamed into place: a crash leaves no half mirror to fetch into.
        partial = self.root / f".partial-{uuid.uuid4().hex}.git"
        try:
            await self._git(remote, "could not clone", "clone", "--mirror", "--quiet",
                            remote.url, str(partial), cwd=self.root)  # fmt: skip
            partial.rename(mirror)
        finally:
            remove_tree(partial)

    async def _fetch(self, remote: Remote, mirror: Path) -> None:
        await self.git.run("remote", "set-url", "origin", remote.url, cwd=mirror)
        await self._git(remote, "could not fetch", "fetch", "--prune", "--quiet", "origin",
                        cwd=mirror)  # fmt: skip

    async def _git(self, remote: Remote, what: str, *args: str, cwd: Path) -> None:
        try:
            await self.git.run(*args, cwd=cwd)
        except GitFailed as e:
            lines = e.stderr.strip().splitlines()
            # git says what went wrong on its `fatal:` line; hints and advice come after it.
            said = next((line for line in lines if line.startswith("fatal:")), None)
            reason = said or (lines[-1] if lines else str(e))
            message = f"{what} {remote.display}: {reason}"
            raise GitFailed(e.command, e.exit_status, e.stderr, message) from e


def _key(remote: Remote) -> str:
    return hashlib.sha256(remote.url.encode()).hexdigest()[:32]


class MirrorBusy(Exception):
    """The mirror's lock stayed taken past the wait."""


@asynccontextmanager
async def _locked(path: Path, wait_s: float) -> AsyncIterator[None]:
    """An exclusive flock on `path`, waited for by polling (at most `wait_s`, then MirrorBusy):
    the event loop keeps running, and a cancelled wait leaves no thread behind that would take
    the lock later."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pause = LOCK_POLL_S[0]
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise MirrorBusy(str(path)) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, LOCK_POLL_S[1])
        yield
    finally:
        os.close(fd)  # closing releases the lock
