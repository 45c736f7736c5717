"""A follow-up's first step: the agent's session of the job it follows, resumed where it was
kept (worker/agents/sessions.py), else a fresh session told what happened so far (a summary of
that job's transcript and its diff), saying why. And after every agent step, its session kept
for the follow-ups to come."""

from __future__ import annotations

import json
import logging
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from cairn.domain.errors import CairnError
from cairn.domain.jobs.transcript import (
    Command,
    FileEdit,
    Message,
    ToolCall,
    TranscriptEntry,
    decode,
)
from cairn.streams.artifacts import ArtifactStore
from cairn.worker.agents.sessions import (
    THREAD_TOTAL,
    prune_sessions,
    restore_session,
    save_session,
    session_folder,
)
from cairn.worker.workspace import Workspace

log = logging.getLogger("cairn.worker")
SUMMARY_MAX = 8_000  # characters of the earlier run's summary in a fresh session's prompt
DIFF_MAX = 20_000  # ... and of its diff


@dataclass(frozen=True)
class Continuation:
    """How a follow-up's agent goes on: the session to resume (None: a fresh one), what the
    transcript says of it, and the prompt (the message; with a fresh session, the summary)."""

    resume: str | None
    note: str
    prompt: str
    before: tuple[int, int, int] | None = None  # codex: the resumed thread's tokens so far


def keep_session(data_dir: Path, job_id: str, runtime: str, workspace: Workspace,
                 thread_total: tuple[int, int, int] | None) -> bool:  # fmt: skip
    """After an agent step: its CLI's session kept under the data dir for a follow-up."""
    folder = session_folder(data_dir, job_id, runtime)
    try:
        prune_sessions(data_dir)  # what is past its keeping time goes as new ones come
        kept = save_session(runtime, workspace.home, workspace.repo, folder)
        if kept and thread_total is not None:
            (folder / THREAD_TOTAL).write_text(json.dumps(list(thread_total)))
    except OSError as e:
        log.warning("the %s session of %s was not kept: %s", runtime, job_id, e)
        return False
    return kept


def continue_from(data_dir: Path, artifacts: ArtifactStore, workspace: Workspace, *,
                  followed: str, session: str | None, runtime: str, prompt: str,
                  message: str, published: bool = True) -> Continuation:  # fmt: skip
    """The follow-up's way on from job `followed` (whose agent's session was `session`). When
    that job published nothing (`published` false), its changes are not in this checkout: the
    agent is told its diff, and the transcript says so."""
    way = _resumed(data_dir, artifacts, workspace, followed=followed, session=session,
                   runtime=runtime, prompt=prompt, message=message)  # fmt: skip
    if published:
        return way
    diff = _diff(artifacts, followed)
    told = ("Note: the changes of the earlier run were not published, so they are not in this "
            f"checkout. Its diff, to redo what is still wanted:\n```diff\n{diff}\n```\n\n"
            ) if diff else ""  # fmt: skip
    note = (f"{way.note} Job {followed} published nothing, so this run starts without its "
            "changes" + (" (its diff is in the prompt)." if diff else "."))  # fmt: skip
    return Continuation(way.resume, note, told + way.prompt, way.before)


def _resumed(data_dir: Path, artifacts: ArtifactStore, workspace: Workspace, *, followed: str,
             session: str | None, runtime: str, prompt: str, message: str) -> Continuation:
    """The session resumed where it was kept, else a fresh one told the summary."""
    folder = session_folder(data_dir, followed, runtime)
    if session is not None:
        try:
            restored = restore_session(runtime, folder, workspace.home, workspace.repo)
        except OSError as e:
            log.warning("the session of %s could not be restored: %s", followed, e)
            restored = False
        if restored:
            note = f"Resuming the {runtime} session {session} of job {followed}."
            return Continuation(session, note, message, _thread_total(folder))
        why = "its session store is gone (removed, past its keeping time, or on another worker)"
    else:
        why = "its agent recorded no session"
    summary = summarize(artifacts, followed)
    note = (f"The session of job {followed} could not be resumed: {why}. A fresh session "
            "starts, told what that run did and what it changed.")  # fmt: skip
    return Continuation(None, note, f"{summary}\n\n{prompt}")


def summarize(artifacts: ArtifactStore, job_id: str) -> str:
    """What a fresh session is told of the earlier run: what its agent said and did (from its
    last attempt's transcript) and its diff, both cut to a prompt's size."""
    stored = {a.path: a for a in _listed(artifacts, job_id)}
    attempts = sorted({int(p.split("/")[0].split("-")[1]) for p in stored
                       if p.startswith("attempt-")})  # fmt: skip
    lines: list[str] = []
    diff = ""
    if attempts:
        last = f"attempt-{attempts[-1]}/"
        steps = sorted((p for p in stored if p.startswith(last + "transcript/")),
                       key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))  # fmt: skip
        for path in steps:
            lines += [_line(e) for e in _entries(artifacts, job_id, path)]
        if last + "changes.patch" in stored:
            diff = _read(artifacts, job_id, last + "changes.patch")
    said = "\n".join(line for line in lines if line)
    said = said[-SUMMARY_MAX:] if said else "(no transcript was kept)"
    diff = (diff[:DIFF_MAX] + "\n… (the diff goes on)") if len(diff) > DIFF_MAX else diff
    return (f"This continues earlier work on this repository (job {job_id}); its agent's "
            "session could not be resumed, so here is what happened.\n\n"
            f"## What the earlier run did\n{said}\n\n"
            f"## What it changed (on the branch you are on)\n```diff\n{diff or '(nothing)'}\n```")


def _diff(artifacts: ArtifactStore, job_id: str) -> str:
    """The job's last attempt's diff, cut to a prompt's size."""
    stored = [a.path for a in _listed(artifacts, job_id) if a.path.endswith("/changes.patch")]
    if not stored:
        return ""
    last = max(stored, key=lambda p: int(p.split("/")[0].split("-")[1]))
    diff = _read(artifacts, job_id, last)
    return (diff[:DIFF_MAX] + "\n… (the diff goes on)") if len(diff) > DIFF_MAX else diff


def _line(entry: TranscriptEntry) -> str:
    match entry:
        case Message(role=role, text=text):
            return f"{role}: {text}"
        case ToolCall(tool=tool, summary=summary):
            return f"tool {tool}: {summary}"
        case Command(command=command, exit_status=status):
            return f"ran `{command}` (exit {status})"
        case FileEdit(path=path, added=added, removed=removed):
            return f"changed {path} (+{added} -{removed})"
    return ""


def _listed(artifacts: ArtifactStore, job_id: str) -> list:  # type: ignore[type-arg]
    try:
        return artifacts.list(job_id)
    except (CairnError, OSError):
        return []


def _read(artifacts: ArtifactStore, job_id: str, path: str) -> str:
    try:
        return artifacts.open(job_id, path).read_text(errors="replace")
    except (CairnError, OSError):
        return ""


def _entries(artifacts: ArtifactStore, job_id: str, path: str) -> list[TranscriptEntry]:
    found: list[TranscriptEntry] = []
    for line in _read(artifacts, job_id, path).splitlines():
        with suppress(ValueError):
            found.append(decode(line))
    return found


def _thread_total(folder: Path) -> tuple[int, int, int] | None:
    with suppress(OSError, ValueError, TypeError):
        a, b, c = json.loads((folder / THREAD_TOTAL).read_text())
        return int(a), int(b), int(c)
    return None
