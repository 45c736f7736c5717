"""Skills a job asks for: found in CAIRN_SKILLS_DIRS, copied once into a content-addressed,
read-only cache, and linked into the workspace where each agent CLI looks for them.

A skill is a folder `<dir>/<name>/` holding `SKILL.md`. Its cache copy is
`<cache>/<sha256 of its name and files>/<name>/` (files 0444, or 0555 when executable; folders
0555), so a job can neither change a skill for the next one nor see one change under it. The
checkout's `.agents/skills`, `.claude/skills` and `.gemini/skills` lead to the workspace's
`skills_active/`, and are listed in `.git/info/exclude` so they are never committed.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cairn.worker.workspace import Workspace, remove_tree

SKILL_FILE = "SKILL.md"
AGENT_SKILL_DIRS = (".agents/skills", ".claude/skills", ".gemini/skills")
SKIPPED = frozenset({".git", "__pycache__"})
FILE_MODE, EXEC_MODE, DIR_MODE = 0o444, 0o555, 0o555


class SkillNotFound(Exception):
    """No folder of that name holding SKILL.md in any skills folder: the job cannot run."""

    def __init__(self, name: str, looked_in: Sequence[Path]) -> None:
        where = ", ".join(str(d) for d in looked_in) or "no folders (CAIRN_SKILLS_DIRS is empty)"
        super().__init__(
            f"skill '{name}' not found: no folder '{name}/' holding {SKILL_FILE} in {where}; "
            "add it there or set CAIRN_SKILLS_DIRS to the folders that hold your skills"
        )
        self.name = name
        self.looked_in = list(looked_in)


@dataclass(frozen=True)
class SkillRef:
    name: str
    sha256: str
    path: Path  # its read-only copy in the cache


def find_skill(name: str, dirs: Sequence[Path]) -> Path:
    """The folder of skill `name` in the first of `dirs` that has it, else SkillNotFound."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise SkillNotFound(name, dirs)
    for folder in dirs:
        candidate = folder / name
        if (candidate / SKILL_FILE).is_file():
            return candidate
    raise SkillNotFound(name, dirs)


def materialize_skills(
    names: Sequence[str], dirs: Sequence[Path], cache_root: Path, workspace: Workspace
) -> list[SkillRef]:
    """Cache each skill (once per content) and link it into the workspace and checkout."""
    refs = [_cached(name, find_skill(name, dirs), cache_root) for name in dict.fromkeys(names)]
    for ref in refs:
        link = workspace.skills_active / ref.name
        link.unlink(missing_ok=True)
        link.symlink_to(ref.path, target_is_directory=True)
    _link_agent_dirs(workspace, [ref.name for ref in refs])
    return refs


def skill_digest(source: Path) -> str:
    """sha256 over the skill's name and files (each one's path, executable bit and content);
    with the name, two skills of the same files never share a cache entry."""
    digest = hashlib.sha256(f"{source.name}\0".encode())
    for relative, path in _files(source):
        executable = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"{relative}\0{executable}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _files(source: Path) -> Iterator[tuple[str, Path]]:
    """Regular files below `source` (a link to a file counts as that file), in a fixed order;
    linked folders and SKIPPED ones are left out."""
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_file():
                yield path.relative_to(source).as_posix(), path


def _cached(name: str, source: Path, cache_root: Path) -> SkillRef:
    sha = skill_digest(source)
    entry = cache_root / sha
    if not (entry / name).is_dir():
        cache_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Built beside and renamed into place, so a reader never sees a half copy.
        partial = cache_root / f".partial-{uuid.uuid4().hex}"
        try:
            _copy(source, partial / name)
            for folder in (partial / name, partial):
                folder.chmod(DIR_MODE)
            try:
                partial.rename(entry)
            except OSError:
                if not (entry / name).is_dir():  # not merely another job caching it first
                    raise
        finally:
            remove_tree(partial)
    return SkillRef(name=name, sha256=sha, path=entry / name)


def _copy(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    folders: list[Path] = []
    for relative, path in _files(source):
        copy = target / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(path.read_bytes())
        copy.chmod(EXEC_MODE if os.access(path, os.X_OK) else FILE_MODE)
        folders.append(copy.parent)
    # Deepest first: a folder made read-only takes no new entries.
    for folder in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        folder.chmod(DIR_MODE)


def _link_agent_dirs(workspace: Workspace, names: list[str]) -> None:
    excluded: list[str] = []
    repo, active = workspace.repo.resolve(), workspace.skills_active.resolve()
    for place in AGENT_SKILL_DIRS:
        where = workspace.repo / place
        if not os.path.lexists(where):
            where.parent.mkdir(parents=True, exist_ok=True)
            where.symlink_to(_relative(workspace.skills_active, where.parent))
            excluded.append(f"/{place}")
            continue
        real = where.resolve()
        if not where.is_dir() or real == active or not real.is_relative_to(repo):
            continue  # a file, a link to ours, or outside the checkout: left as it is
        # The repository keeps skills of its own there (perhaps tracked): ours go beside them.
        for name in names:
            link = real / name
            if not os.path.lexists(link):
                link.symlink_to(_relative(workspace.skills_active / name, real))
                excluded.append("/" + link.relative_to(repo).as_posix())
    _exclude(workspace.repo, excluded)


def _relative(target: Path, start: Path) -> str:
    # Relative, so the links still lead there when the workspace is mounted elsewhere.
    return os.path.relpath(target, start)


def _exclude(repo: Path, patterns: list[str]) -> None:
    info = repo / ".git" / "info"
    info.mkdir(parents=True, exist_ok=True)
    exclude = info / "exclude"
    present = exclude.read_text().splitlines() if exclude.exists() else []
    missing = [p for p in patterns if p not in present]
    if missing:
        with exclude.open("a") as out:
            out.write("".join(f"{p}\n" for p in ["# Cairn's skill links", *missing]))
