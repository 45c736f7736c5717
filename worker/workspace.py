"""A job attempt's workspace: `<data dir>/work/<job id>/attempt-<n>/` holding `repo/` (the
checkout), `home/` (the agent's HOME), `skills_active/` (links to its skills) and `artifacts/`.
Each attempt starts from a fresh one, so nothing of a crashed attempt leaks into the next."""

from __future__ import annotations

import os
import shutil
import stat
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

MODE = 0o700  # the job's files are the worker's alone


@dataclass(frozen=True)
class Workspace:
    root: Path
    repo: Path
    home: Path
    skills_active: Path
    artifacts: Path


def make_workspace(data_dir: Path, job_id: str, attempt: int) -> Workspace:
    """A fresh, empty workspace for this attempt (a leftover of the same attempt is removed)."""
    if not job_id or job_id in (".", "..") or "/" in job_id or "\0" in job_id:
        raise ValueError(f"a job id must be one path segment, not {job_id[:64]!r}")
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    root = data_dir / "work" / job_id / f"attempt-{attempt}"
    if root.exists() or root.is_symlink():
        remove_tree(root)
    for parent in (data_dir / "work", data_dir / "work" / job_id):
        parent.mkdir(mode=MODE, parents=True, exist_ok=True)
    root.mkdir(mode=MODE)
    workspace = Workspace(
        root=root,
        repo=root / "repo",
        home=root / "home",
        skills_active=root / "skills_active",
        artifacts=root / "artifacts",
    )
    for folder in (workspace.repo, workspace.home, workspace.skills_active, workspace.artifacts):
        folder.mkdir(mode=MODE)
        folder.chmod(MODE)  # mkdir's mode is cut by the umask
    root.chmod(MODE)
    return workspace


def remove_workspace(workspace: Workspace) -> None:
    """Remove the attempt's folder, and the job's folder once no attempt is left in it."""
    remove_tree(workspace.root)
    # Fails when another attempt's workspace is still there, or the folder is gone already.
    with suppress(OSError):
        workspace.root.parent.rmdir()


def remove_tree(path: Path) -> None:
    """Remove `path` and everything below it, read-only folders included (an agent or a
    tool may leave some); symbolic links are removed, never followed."""
    if path.is_symlink() or not path.exists():
        path.unlink(missing_ok=True)
        return
    for folder, dirs, _ in os.walk(path):
        for name in dirs:
            child = Path(folder) / name
            if not child.is_symlink():
                child.chmod(stat.S_IRWXU)
    path.chmod(stat.S_IRWXU)
    shutil.rmtree(path)
