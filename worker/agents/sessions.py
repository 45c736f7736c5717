"""An agent's session, kept past its job so a follow-up can resume it: after each step the CLI's
session files are copied out of the job's HOME into `<data dir>/sessions/<job id>/<runtime>/`,
and before a follow-up's step back into its HOME, placed where the CLI looks for them from the
new checkout (claude and gemini key their sessions by the working directory; codex by date):

- claude: `~/.claude/projects/<the cwd, each non-alphanumeric character a dash>/<id>.jsonl`;
- codex: `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*-<id>.jsonl` and its state databases (whose
  threads name their rollout file and working directory by absolute path: moved too);
- gemini: `~/.gemini/tmp/<name>/chats/session-*.jsonl` (whose first line names the project by
  the sha256 of its root), `~/.gemini/projects.json` (root -> name) and `.project_root` files.

A job's sessions are kept `SESSION_KEEP_S` (14 days) and at most `SESSION_MAX_BYTES` each; an
older or bigger one is not kept, and a follow-up then starts afresh (it says so)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import time
from contextlib import closing, suppress
from pathlib import Path

SESSION_KEEP_S = 14 * 24 * 3600
SESSION_MAX_BYTES = 64 * 1024 * 1024
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
THREAD_TOTAL = "thread_total.json"  # codex: the thread's tokens when the session was kept
CODEX_KEPT = ("sessions", "state_5.sqlite", "thread_history_1.sqlite")  # besides rollouts


def claude_project(cwd: Path) -> str:
    return _NOT_ALNUM.sub("-", str(cwd))


def session_folder(data_dir: Path, job_id: str, runtime: str) -> Path:
    return data_dir / "sessions" / job_id / runtime


def save_session(runtime: str, home: Path, cwd: Path, folder: Path) -> bool:
    """Copy the CLI's session files from the job's `home` into `folder` (replacing what was
    there); False when there were none, or they are too big to keep."""
    sources = _session_files(runtime, home, cwd)
    if not sources:
        return False
    if sum(p.stat().st_size for p in sources if p.is_file()) > SESSION_MAX_BYTES:
        return False
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, mode=0o700)
    for source in sources:
        target = folder / source.relative_to(home)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (folder / "cwd").write_text(str(cwd))
    (folder / "home").write_text(str(home))
    return True


def restore_session(runtime: str, folder: Path, home: Path, cwd: Path) -> bool:
    """Put a kept session into a follow-up's `home`, for the CLI to find from `cwd`; False
    when there is none (gone, or past its time)."""
    if not (folder / "cwd").is_file() or time.time() - folder.stat().st_mtime > SESSION_KEEP_S:
        return False
    old = Path((folder / "cwd").read_text())
    kept = {folder / "cwd", folder / "home", folder / THREAD_TOTAL}  # Cairn's own notes
    for source in sorted(p for p in folder.rglob("*") if p.is_file() and p not in kept):
        relative = source.relative_to(folder)
        if runtime == "claude" and relative.parts[:2] == (".claude", "projects"):
            relative = Path(".claude", "projects", claude_project(cwd), *relative.parts[3:])
        target = home / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    if runtime == "gemini":
        _gemini_moved(home, old, cwd)
    if runtime == "codex" and (folder / "home").is_file():
        _codex_moved(home, Path((folder / "home").read_text()), old, cwd)
    return True


def prune_sessions(data_dir: Path, now: float | None = None) -> int:
    """Remove the kept sessions older than SESSION_KEEP_S; how many jobs' went."""
    root, now = data_dir / "sessions", time.time() if now is None else now
    gone = 0
    for job in root.iterdir() if root.is_dir() else []:
        with suppress(OSError):
            if now - job.stat().st_mtime > SESSION_KEEP_S:
                shutil.rmtree(job)
                gone += 1
    return gone


def _session_files(runtime: str, home: Path, cwd: Path) -> list[Path]:
    if runtime == "claude":
        folder = home / ".claude" / "projects" / claude_project(cwd)
        return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if runtime == "codex":
        codex = home / ".codex"
        found = sorted((codex / "sessions").rglob("*.jsonl")) if (codex / "sessions").is_dir() \
            else []  # fmt: skip
        return found + [codex / name for name in CODEX_KEPT[1:] if (codex / name).is_file()] \
            if found else []  # fmt: skip
    if runtime == "gemini":
        gemini = home / ".gemini"
        chats = sorted((gemini / "tmp").glob("*/chats/*")) if (gemini / "tmp").is_dir() else []
        extra = [gemini / "projects.json"] if (gemini / "projects.json").is_file() else []
        roots = sorted(gemini.glob("*/*/.project_root"))
        return chats + extra + roots if chats else []
    return []


def _codex_moved(home: Path, old_home: Path, old: Path, cwd: Path) -> None:
    """codex finds a thread's rollout by the path its state database has: the new HOME's."""
    database = home / ".codex" / CODEX_KEPT[1]
    if not database.is_file():
        return
    with suppress(sqlite3.Error), closing(sqlite3.connect(database)) as db, db:
        db.execute("UPDATE threads SET rollout_path = replace(rollout_path, ?, ?), "
                   "cwd = replace(cwd, ?, ?)", (str(old_home), str(home), str(old), str(cwd)))


def _gemini_moved(home: Path, old: Path, cwd: Path) -> None:
    """gemini names a project by its root: the kept session's, moved to the new checkout."""
    gemini = home / ".gemini"
    projects = gemini / "projects.json"
    with suppress(OSError, ValueError):
        table = json.loads(projects.read_text())
        names = table.get("projects", {})
        if str(old) in names:
            names[str(cwd)] = names.pop(str(old))
            projects.write_text(json.dumps(table, indent=2))
    for marker in gemini.glob("*/*/.project_root"):
        if marker.read_text().strip() == str(old):
            marker.write_text(str(cwd))
    old_hash = hashlib.sha256(str(old).encode()).hexdigest()
    new_hash = hashlib.sha256(str(cwd).encode()).hexdigest()
    for chat in gemini.glob("tmp/*/chats/*"):
        with suppress(OSError, UnicodeDecodeError):
            text = chat.read_text()
            if old_hash in text:
                chat.write_text(text.replace(old_hash, new_hash))
