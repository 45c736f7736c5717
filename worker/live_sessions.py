"""Live sessions on this worker (domain/jobs/live.py, decision 0011): what the job's terminal
shows goes to each session's stream in the store as it comes (redacted like the logs); a
takeover holds the agent (SIGSTOP, as a pause does), runs `bash -l` under a pseudo-terminal in
a sandbox like the step's, with the job's minimal environment, and relays what the person types;
on its end the shell goes, what they changed and their note reach the agent as an operator
message, and the agent goes on. Every session is recorded (asciicast v2, `live/<id>.cast`).

The job's events decide which sessions are open (the API opens and closes them); this server
follows them at each look at the job, and ends sessions itself on their TTL, on silence and
when the job ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cairn.domain.errors import CairnError
from cairn.domain.jobs.events import JobEvent, JobOperatorMessage
from cairn.domain.jobs.job import Job, decide_cancel
from cairn.domain.jobs.live import decide_end, past_ttl
from cairn.streams.live import LiveChannels
from cairn.worker.attempt import Attempt
from cairn.worker.live import QUIET_S
from cairn.worker.process import minimal_env, open_pty
from cairn.worker.redaction import StreamRedactor

log = logging.getLogger("cairn.worker")
FLUSH_S = 0.05  # frames go out at least this often while output comes
FRAME_CHARS = 16_384
INPUT_PER_S = 200  # frames of input a takeover takes a second (a paste is one frame)
INPUT_CHARS = 65_536  # ... and characters of one frame
DIFF_MAX = 20_000  # of a takeover's diff, in the message to the agent
_served = 0  # sessions this worker serves now, over all its jobs (CAIRN_LIVE_SESSIONS_MAX)
CANCEL_STATUS = 86  # the takeover shell's exit status that ends the job (`cairn-cancel`)
PROFILE = """# Cairn: a takeover of job {job}
PS1='takeover$ '
cairn-cancel() {{ echo "cairn: ending job {job} (cancelled, by {actor})"; exit 86; }}
echo "Cairn: you have job {job}; the agent waits. Hand it back from the dashboard (or exit);"
echo "cairn-cancel ends the job instead."
"""


@dataclass
class Session:
    session_id: str
    mode: str
    actor: str
    opened: float  # time.monotonic()
    cast: Path
    n: int = 0
    frames: list[tuple[str, str, int]] = field(default_factory=list)
    last_input: float = 0.0

    def record(self, kind: str, text: str) -> None:
        with self.cast.open("a", encoding="utf-8") as f:
            f.write(json.dumps([round(time.monotonic() - self.opened, 3), kind, text]) + "\n")


class SessionServer:
    """The live sessions of one attempt on this worker."""

    def __init__(self, run: Attempt, channels: LiveChannels, *, idle_s: float) -> None:
        self.run, self.channels, self.idle_s = run, channels, idle_s
        self.sessions: dict[str, Session] = {}
        self.takeover: Takeover | None = None
        self._flusher: asyncio.Task[None] | None = None

    @property
    def holding(self) -> bool:
        """Whether the agent is to be held (a takeover is on)."""
        return self.takeover is not None

    def show(self, text: str) -> None:
        """What the terminal showed (redacted already): to every session."""
        if not text or not self.sessions:
            return
        for session in self.sessions.values():
            for start in range(0, len(text), FRAME_CHARS):
                session.n += 1
                session.frames.append(("o", text[start:start + FRAME_CHARS], session.n))
            session.record("o", text)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_S)
        await self.flush()

    async def flush(self) -> None:
        for session in list(self.sessions.values()):
            frames, session.frames = session.frames, []
            try:
                await self.channels.put(self.run.job.id, session.session_id, "out", frames)
            except CairnError as e:  # a watcher's loss is never the job's
                log.warning("live session %s: %s", session.session_id, e.message)

    async def follow(self, job: Job) -> None:
        """Open what the job's events opened, end what they ended, and end on TTL or silence."""
        open_ids = {s["session_id"] for s in job.live_sessions}
        closed = [s for s in self.sessions if s not in open_ids]
        for sid in closed:
            ended = next((e for e in job.live_ended if e["session_id"] == sid), {})
            await self._close(sid, ended)
        if closed:  # their recordings' events, now rather than with the step's next write
            await self.run.held.write(lambda job: [])
        for found in job.live_sessions:
            if found["session_id"] not in self.sessions:
                await self._open(found)
        now = datetime.now(UTC)
        for found in past_ttl(job, now):
            await self.end(found["session_id"], "ttl")
        taken = self.takeover
        if taken is not None and taken.process is not None and taken.process.returncode is not None:
            # The person left the shell: `cairn-cancel` ends the job (cancelled, naming them),
            # anything else hands it back.
            ending = taken.process.returncode == CANCEL_STATUS
            sid, who = taken.session.session_id, taken.session.actor
            await self.end(sid, "closed" if ending else "handed_back")
            if ending:
                reason = f"ended by {who} from a takeover"
                await self.run.held.write(lambda job: decide_cancel(job, reason))
        elif taken is not None:
            quiet = time.monotonic() - max(taken.session.last_input, taken.session.opened)
            if quiet > self.idle_s:
                await self.end(taken.session.session_id, "idle")

    async def end(self, session_id: str, why: str) -> None:
        """This worker ends a session (its TTL, silence, the job's end)."""
        if session_id not in self.sessions:
            return
        recording = await self._close(session_id, {"why": why})

        took = recording.pop("duration_s", None) if recording else None

        def ended(job: Job) -> list[JobEvent]:
            return decide_end(job, session_id, why, recording=recording, duration_s=took)

        await self.run.held.write(ended)

    async def close_all(self, why: str) -> None:
        for sid in list(self.sessions):
            await self.end(sid, why)

    async def _open(self, found: dict[str, Any]) -> None:
        global _served
        assert self.run.workspace is not None
        if _served >= self.run.execution.live_max:
            sid = str(found["session_id"])
            log.warning("job %s: live session %s refused: %d served", self.run.job.id, sid, _served)
            await self.run.held.write(lambda job: decide_end(job, sid, "worker_busy"))
            return
        _served += 1
        folder = self.run.workspace.artifacts / "live"
        folder.mkdir(parents=True, exist_ok=True)
        sid = str(found["session_id"])
        session = Session(sid, str(found["mode"]), str(found["actor"]), time.monotonic(),
                          folder / f"{sid}.cast")  # fmt: skip
        header = {"version": 2, "width": 120, "height": 32, "timestamp": int(time.time()),
                  "title": f"{session.mode} of {self.run.job.id} by {session.actor}"}  # fmt: skip
        session.cast.write_text(json.dumps(header) + "\n")
        self.sessions[sid] = session
        log.info("job %s: live session %s (%s by %s) opened", self.run.job.id, sid, session.mode,
                 session.actor)  # fmt: skip
        if session.mode == "takeover" and self.takeover is None:
            self.takeover = Takeover(self, session)
            await self.takeover.start()

    async def _close(self, session_id: str, ended: dict[str, Any]) -> dict[str, Any] | None:
        global _served
        session = self.sessions.pop(session_id, None)
        if session is None:
            return None
        _served -= 1
        if self.takeover is not None and self.takeover.session is session:
            taken, self.takeover = self.takeover, None
            await taken.stop(ended)
        session.frames.append(("e", str(ended.get("why") or "closed"), session.n))
        self.sessions[session_id] = session  # for its last flush
        await self.flush()
        del self.sessions[session_id]
        stored = await self.run.add_file(f"live/{session_id}.cast", session.cast)
        return {"path": stored.path, "sha256": stored.sha256, "size": stored.size,
                "duration_s": round(time.monotonic() - session.opened, 3)}  # fmt: skip


class Takeover:
    """A person's shell in the job's sandbox, under a pseudo-terminal."""

    def __init__(self, server: SessionServer, session: Session) -> None:
        self.server, self.session = server, session
        self.process: asyncio.subprocess.Process | None = None
        self.master = -1
        self.base: str | None = None
        self.relay: asyncio.Task[None] | None = None
        self.redact: StreamRedactor = server.run.redactor.stream()
        self._quiet: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        run = self.server.run
        assert run.workspace is not None and run.git is not None
        ws = run.workspace
        self.base = await run.git.snapshot(ws.repo)
        env = minimal_env(ws.home, extra={"TERM": "xterm-256color"})
        profile = ws.home / ".bash_profile"
        profile.write_text(PROFILE.format(job=run.job.id, actor=self.session.actor))
        sandbox = run.tools.sandbox
        argv = sandbox.command(["bash", "-l"], ws, read_only=run.tools.readable)
        sandbox.hand_over(ws)  # after the profile is written: the step's user reads it
        self.master, slave = open_pty()
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv, cwd=ws.repo, env=env, stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True)  # fmt: skip
        finally:
            os.close(slave)
        loop = asyncio.get_running_loop()
        loop.add_reader(self.master, self._readable)
        self.relay = asyncio.create_task(self._relay_input())

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65_536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        loop = asyncio.get_running_loop()
        if not data:
            loop.remove_reader(self.master)
            self.server.show(self.redact.flush())
            return
        self.server.show(self.redact.feed(data.decode(errors="replace")))
        if self._quiet is not None:
            self._quiet.cancel()
        self._quiet = loop.call_later(QUIET_S, lambda: self.server.show(self.redact.release()))

    async def _relay_input(self) -> None:
        """What the person types, from the store to the shell: at most INPUT_PER_S frames a
        second; recorded, but not what a password prompt reads."""
        import termios

        job_id, sid = self.server.run.job.id, self.session.session_id
        channels, after = self.server.channels, "0-0"
        window, taken = time.monotonic(), 0
        while True:
            try:
                frames = await channels.read(job_id, sid, "in", after, block_ms=500)
            except Exception:  # the store away for a moment: try again
                await asyncio.sleep(0.5)
                continue
            for frame in frames:
                after = frame.id
                now = time.monotonic()
                if now - window >= 1:
                    window, taken = now, 0
                taken += 1
                if taken > INPUT_PER_S:
                    continue  # past the rate: dropped
                self.session.last_input = now
                if frame.kind == "r":
                    self._resize(frame.data)
                    continue
                data = frame.data[:INPUT_CHARS]
                with contextlib.suppress(OSError):
                    # A password prompt reads whole lines with the echo off (getpass, sudo,
                    # `read -s`); a shell's line editor turns both off and echoes itself.
                    flags = termios.tcgetattr(self.master)[3]
                    hidden = bool(flags & termios.ICANON) and not flags & termios.ECHO
                    os.write(self.master, data.encode())
                    self.session.record("i", "" if hidden else data)

    def _resize(self, size: str) -> None:
        import fcntl
        import struct
        import termios

        columns, _, rows = size.partition("x")
        if columns.isdigit() and rows.isdigit():
            with contextlib.suppress(OSError):
                packed = struct.pack("HHHH", min(int(rows), 500), min(int(columns), 1000), 0, 0)
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, packed)

    async def stop(self, ended: dict[str, Any]) -> None:
        """The shell ends; what the person changed and their note go to the agent."""
        if self.relay is not None:
            self.relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.relay
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGHUP)
            try:
                await asyncio.wait_for(self.process.wait(), 2)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()
        with contextlib.suppress(OSError, ValueError):
            asyncio.get_running_loop().remove_reader(self.master)
            os.close(self.master)
        run = self.server.run
        if run.workspace is not None:
            (run.workspace.home / ".bash_profile").unlink(missing_ok=True)
        await self._tell_the_agent(ended)

    async def _tell_the_agent(self, ended: dict[str, Any]) -> None:
        run = self.server.run
        assert run.workspace is not None and run.git is not None and self.base is not None
        diff = await run.git.diff(run.workspace.repo, self.base,
                                  await run.git.snapshot(run.workspace.repo))  # fmt: skip
        patch = run.redactor.redact(diff.patch)
        note = str(ended.get("note") or "").strip()
        why = str(ended.get("why") or "closed")
        text = (f"An operator ({self.session.actor}) took this job over and "
                f"{'handed it back' if why == 'handed_back' else f'the takeover ended ({why})'}.")
        if note:
            text += f"\nTheir note: {run.redactor.redact(note)}"
        if diff.files:
            cut = patch[:DIFF_MAX] + ("\n[... cut]" if len(patch) > DIFF_MAX else "")
            text += f"\nWhat they changed ({len(diff.paths)} file(s)):\n```diff\n{cut}\n```"
        else:
            text += "\nThey changed no file."
        message = text[:3_900]

        def told(job: Job) -> list[JobEvent]:
            return [JobOperatorMessage(text=message)] if job.status == "running" else []

        await self.server.run.held.write(told)
