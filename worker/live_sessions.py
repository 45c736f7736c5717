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
import shutil
import signal
import time
from collections.abc import Callable
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
FRAMES_MAX = 500  # frames a session holds while the store is slow (older ones: dropped)
CANCEL_STATUS = 86  # the takeover shell's exit status that ends the job (`cairn-cancel`)
ENDED_TTL_S = 300  # an ended session's streams are kept this long (the recording stays)
BANNER = ("\r\n[cairn: you have job {job}; the agent waits. Hand it back from the dashboard "
          "(or exit the shell); `cairn-cancel` ends the job instead]\r\n")


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
    """The live sessions of one attempt on this worker. `follow` runs one at a time (a look at
    the job that was cancelled finishes before the next begins)."""

    def __init__(self, run: Attempt, channels: LiveChannels, *, idle_s: float) -> None:
        self.run, self.channels, self.idle_s = run, channels, idle_s
        self.sessions: dict[str, Session] = {}
        self.takeover: Takeover | None = None
        self.hold_agent: Callable[[], None] | None = None  # set by the step running now
        self._flusher: asyncio.Task[None] | None = None
        self._following = asyncio.Lock()
        self._flushing = asyncio.Lock()

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
            del session.frames[:-FRAMES_MAX]  # readers see the gap in the counts
            session.record("o", text)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_S)
        await self.flush()

    async def flush(self, only: Session | None = None) -> None:
        async with self._flushing:  # frames in order, the end frame last
            for session in [only] if only else list(self.sessions.values()):
                frames, session.frames = session.frames, []
                try:
                    await self.channels.put(self.run.job.id, session.session_id, "out", frames)
                except CairnError as e:  # a watcher's loss is never the job's
                    log.warning("live session %s: %s", session.session_id, e.message)

    async def follow(self, job: Job) -> None:
        """Open what the job's events opened, end what they ended, and end on TTL or silence
        (shielded: a look cancelled midway still finishes)."""
        await asyncio.shield(self._follow_once(job))

    async def _follow_once(self, job: Job) -> None:
        async with self._following:
            job = self.run.held.job if self.run.held.job.version > job.version else job
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
            for found in past_ttl(job, datetime.now(UTC)):
                await self._end(found["session_id"], "ttl")
            await self._shell_left_or_silent()

    async def _shell_left_or_silent(self) -> None:
        taken = self.takeover
        if taken is None:
            return
        if taken.process is not None and taken.process.returncode is not None:
            # The person left the shell: `cairn-cancel` ends the job (cancelled, naming them),
            # anything else hands it back.
            ending = taken.process.returncode == CANCEL_STATUS
            who = taken.session.actor
            if ending:
                reason = f"ended by {who} from a takeover"
                await self.run.held.write(lambda job: decide_cancel(job, reason))
            await self._end(taken.session.session_id, "closed" if ending else "handed_back")
            return
        quiet = time.monotonic() - max(taken.session.last_input, taken.session.opened)
        if quiet > self.idle_s:
            await self._end(taken.session.session_id, "idle")

    async def _end(self, session_id: str, why: str) -> None:
        """This worker ends a session (its TTL, silence, the shell left, the job's end)."""
        if session_id not in self.sessions:
            return
        recording = await self._close(session_id, {"why": why})
        took = recording.pop("duration_s", None) if recording else None

        def ended(job: Job) -> list[JobEvent]:
            return decide_end(job, session_id, why, recording=recording, duration_s=took)

        await self.run.held.write(ended)

    async def close_all(self, why: str) -> None:
        """Every session ends here (the job's agent work is over, or its lease is lost): each
        closed on this worker whatever happens to the others, then their ends in one write."""
        async with self._following:
            ends: list[tuple[str, dict[str, Any] | None]] = []
            for sid in list(self.sessions):
                try:
                    ends.append((sid, await self._close(sid, {"why": why})))
                except Exception:  # closing one must not leave the others (or a shell) open
                    log.exception("live session %s: closing it failed", sid)
                    ends.append((sid, None))

            def ended(job: Job) -> list[JobEvent]:
                found: list[JobEvent] = []
                for sid, recording in ends:
                    took = recording.pop("duration_s", None) if recording else None
                    found += decide_end(job, sid, why, recording=recording, duration_s=took)
                return found

            if ends:
                await self.run.held.write(ended)

    async def _open(self, found: dict[str, Any]) -> None:
        global _served
        assert self.run.workspace is not None
        sid = str(found["session_id"])
        if _served >= self.run.execution.live_max:
            log.warning("job %s: live session %s refused: %d served", self.run.job.id, sid,
                        _served)  # fmt: skip
            await self.run.held.write(lambda job: decide_end(job, sid, "worker_busy"))
            return
        folder = self.run.workspace.artifacts / "live"
        session = Session(sid, str(found["mode"]), str(found["actor"]), time.monotonic(),
                          folder / f"{sid}.cast")  # fmt: skip
        try:
            folder.mkdir(parents=True, exist_ok=True)
            title = f"{session.mode} of {self.run.job.id} by {session.actor}"
            header = {"version": 2, "width": 120, "height": 32, "timestamp": int(time.time()),
                      "title": title}  # fmt: skip
            session.cast.write_text(json.dumps(header) + "\n")
            self.sessions[sid] = session
            _served += 1
            if session.mode == "takeover" and self.takeover is None:
                if self.hold_agent is not None:
                    self.hold_agent()  # at once, before anything else
                self.takeover = Takeover(self, session)
                await self.takeover.start()
        except Exception:
            log.exception("job %s: live session %s could not open", self.run.job.id, sid)
            if sid in self.sessions:
                await self._close(sid, {"why": "failed"})
            await self.run.held.write(lambda job: decide_end(job, sid, "failed"))
            return
        log.info("job %s: live session %s (%s by %s) opened", self.run.job.id, sid, session.mode,
                 session.actor)  # fmt: skip

    async def _close(self, session_id: str, ended: dict[str, Any]) -> dict[str, Any] | None:
        """The session ends on this worker: its shell (a takeover's), its end frame, its
        streams' expiry, its recording stored."""
        global _served
        session = self.sessions.get(session_id)
        if session is None:
            return None
        try:
            if self.takeover is not None and self.takeover.session is session:
                taken, self.takeover = self.takeover, None
                await taken.stop(ended)
        finally:
            _served -= 1
            session.frames.append(("e", str(ended.get("why") or "closed"), session.n))
            await self.flush(session)
            del self.sessions[session_id]
            with contextlib.suppress(CairnError):
                await self.channels.expire(self.run.job.id, session_id, ENDED_TTL_S)
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
        self.typed = ""  # the line being typed, recorded (redacted) once it ends
        self.typed_hidden = False  # some of it went to a password prompt: not recorded
        self._quiet: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """The shell: `bash` with no profile of the job's (HOME is the agent's to write), the
        prompt and `cairn-cancel` given in its environment."""
        run = self.server.run
        assert run.workspace is not None and run.git is not None
        ws = run.workspace
        self.base = await run.git.snapshot(ws.repo)
        env = minimal_env(ws.home, extra={
            "TERM": "xterm-256color", "PS1": "takeover$ ",
            "BASH_FUNC_cairn-cancel%%": f"() {{ echo 'cairn: ending job {run.job.id}'; "
                                         f"exit {CANCEL_STATUS}; }}",
        })  # fmt: skip
        sandbox = run.tools.sandbox
        # setsid -c: the pseudo-terminal is the shell's controlling terminal (job control,
        # Ctrl-C); -w: its exit status is the shell's (cairn-cancel's).
        shell = ["bash", "--noprofile", "--norc", "-i"]
        shell = ["setsid", "-c", "-w", *shell] if shutil.which("setsid") else shell
        argv = sandbox.command(shell, ws,
                               read_only=run.tools.readable)  # fmt: skip
        sandbox.hand_over(ws)
        self.server.show(BANNER.format(job=run.job.id))
        self.master, slave = open_pty()
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv, cwd=ws.repo, env=env, stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True)  # fmt: skip
        except BaseException:
            os.close(self.master)
            self.master = -1
            raise
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
        second; recorded a line at a time, redacted, and not what a password prompt reads."""
        job_id, sid = self.server.run.job.id, self.session.session_id
        channels, after = self.server.channels, "0-0"
        window, taken = time.monotonic(), 0
        while True:
            try:
                frames = await channels.read(job_id, sid, "in", after, block_ms=500)
            except CairnError:  # the store away for a moment: try again
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
                self._type(frame.data[:INPUT_CHARS])

    def _type(self, data: str) -> None:
        import termios

        with contextlib.suppress(OSError):
            # A password prompt reads whole lines with the echo off (getpass, sudo, `read -s`);
            # a shell's line editor turns both off and echoes itself.
            flags = termios.tcgetattr(self.master)[3]
            if flags & termios.ICANON and not flags & termios.ECHO:
                self.typed_hidden = True
            os.write(self.master, data.encode())
        self.typed += data
        while (cut := max(self.typed.find("\r"), self.typed.find("\n"))) >= 0:
            line, self.typed = self.typed[: cut + 1], self.typed[cut + 1 :]
            if not self.typed_hidden:
                self.session.record("i", self.server.run.redactor.redact(line))
            self.typed_hidden = False
        self.typed = self.typed[-INPUT_CHARS:]

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
        if self._quiet is not None:
            self._quiet.cancel()
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGHUP)
            try:
                await asyncio.wait_for(self.process.wait(), 2)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()
        if self.master >= 0:
            with contextlib.suppress(OSError, ValueError):
                asyncio.get_running_loop().remove_reader(self.master)
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = -1
        if self.base is not None:
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
