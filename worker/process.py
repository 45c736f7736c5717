"""Running one CLI: an allowlisted environment, its own process group, output to a callback as
it comes, step/idle/job limits and cancel (SIGTERM to the group, SIGKILL after the grace). An
agent step runs in the sandbox (worker/sandbox.py), whose PID namespace ends with it, so nothing
it starts outlives it; outside it, a process that leaves the group (`setsid`, a daemon's double
fork) is out of reach (no cgroups)."""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cairn.domain.errors import CairnError

log = logging.getLogger("cairn.worker.process")

ALLOWED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "USER")
POLL_S = 0.2  # cancel checks, so a cancel reaches a running process well within a second
READ_BYTES = 65_536
MAX_PENDING_CHARS = 4 * 1024 * 1024  # output the consumer has not taken yet; past it, reads wait
GONE_POLL_S = 0.05
KILL_WAIT_S = 5.0  # after SIGKILL; only a process in uninterruptible sleep takes this long
DRAIN_S = 1.0  # output still arriving once the group is gone (from a process that left it)
_EMPTY: Mapping[str, str] = MappingProxyType({})
# Under a pseudo-terminal, programs page their output and wait for a key that never comes.
NO_PAGER = {"PAGER": "cat", "GIT_PAGER": "cat", "MANPAGER": "cat", "SYSTEMD_PAGER": "",
            "LESS": "FRX"}
_Consumer = Callable[[str], Awaitable[None]]


class LaunchFailed(CairnError):
    """The program could not be started at all (not on PATH, not executable, ...)."""

    code = "launch_failed"


@dataclass(frozen=True)
class Limits:
    step_s: float
    idle_s: float  # no output for this long ends the process
    deadline: float | None  # a loop.time() by which the whole job must end
    # An operator's pause, that neither the step's time nor its silence counts: the seconds
    # held so far, and from when silence counts again (now while held; worker/steering.py).
    held: Callable[[], tuple[float, float]] | None = None


@dataclass(frozen=True)
class ProcessResult:
    exit_status: int | None  # negative: ended by that signal (ours when `stopped` is set)
    duration_s: float
    # None, "cancelled", "step_timeout", "idle_timeout", "job_timeout" or what should_stop said
    stopped: str | None
    limit_s: float | None  # the limit that stopped it; for job_timeout, what was left of the job


def minimal_env(
    home: Path,
    *,
    passthrough: Iterable[str] = (),
    extra: Mapping[str, str] = _EMPTY,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """An allowlisted environment: locale and PATH from `source` (default os.environ), HOME and
    TMPDIR (created) in `home`, the named `passthrough` variables present in `source`, `extra`."""
    source = os.environ if source is None else source
    env = {name: source[name] for name in ALLOWED_ENV if name in source}
    env.setdefault("PATH", os.defpath)
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env["HOME"], env["TMPDIR"] = str(home), str(tmp)
    env.update({name: source[name] for name in passthrough if name in source})
    env.update(extra)
    return env


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_output: _Consumer,
    limits: Limits,
    should_stop: Callable[[], Awaitable[bool | str | None]],
    grace_s: float = 5.0,
    stdin: bytes | None = None,
    on_start: Callable[[int], None] | None = None,
    terminal: bool = False,
) -> ProcessResult:
    """Run `argv` to its end or until a limit or `should_stop` (True: "cancelled"; a string:
    that reason, such as a sandbox limit); stdout and stderr merged and decoded as UTF-8 go to
    `on_output` in order; `on_start` gets the pid. Nothing of the group is left running.
    `terminal`: its output is a pseudo-terminal's (what a person at one would see)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    pty = open_pty() if terminal else None
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env={**env, **NO_PAGER} if terminal else dict(env),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=pty[1] if pty else asyncio.subprocess.PIPE,
            stderr=pty[1] if pty else asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own group: a stop reaches everything it started
        )
    except OSError as e:
        if pty is not None:
            os.close(pty[0])
        reason = e.strerror or type(e).__name__
        raise LaunchFailed(f"could not start {argv[0]!r} in {cwd}: {reason}") from e
    finally:
        if pty is not None:
            os.close(pty[1])  # the child has it; the master sees its end when it is gone
    if pty is not None:
        process.stdout = PtyReader(pty[0])
    assert process.stdout is not None
    if on_start is not None:
        on_start(process.pid)
    if stdin is not None and process.stdin is not None:
        # The transport buffers it and writes as the program reads; no task to wait for.
        with suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(stdin)
            process.stdin.close()
    output = _Output(process.stdout, on_output)
    watched = False
    try:
        stopped, limit_s = await _watch(process, output, limits, should_stop, started)
        watched = True
    finally:
        # Also on an error or a cancel of this task: no process of the group may outlive it.
        await _end_group(process, grace_s, terminate=process.returncode is None)
        await output.finish()
        if isinstance(process.stdout, PtyReader):
            process.stdout.close()
        if not watched:
            output.deliverer.cancel()
    await output.delivered()
    return ProcessResult(process.returncode, loop.time() - started, stopped, limit_s)


async def _watch(
    process: asyncio.subprocess.Process,
    output: _Output,
    limits: Limits,
    should_stop: Callable[[], Awaitable[bool | str | None]],
    started: float,
) -> tuple[str | None, float | None]:
    loop = asyncio.get_running_loop()
    # wait() also waits for the output pipe to close, which a background child may hold open;
    # returncode is set as soon as the program itself exits.
    exited = asyncio.ensure_future(process.wait())
    check: asyncio.Future[bool | str | None] | None = None
    next_check = started
    try:
        while True:
            now = loop.time()
            held_s, quiet_from = limits.held() if limits.held is not None else (0.0, 0.0)
            quiet_from = max(output.last, quiet_from)
            ends = [("step_timeout", started + limits.step_s + held_s, limits.step_s),
                    ("idle_timeout", quiet_from + limits.idle_s, limits.idle_s)]  # fmt: skip
            if limits.deadline is not None:
                ends.append(("job_timeout", limits.deadline, limits.deadline - started))
            reason, at, limit = min(ends, key=lambda end: end[1])
            if at <= now:
                return reason, limit
            if output.failed():
                return None, None  # the consumer raised; delivered() re-raises it
            if check is None and now >= next_check:
                # In a task of its own: a slow check must not hold up noticing the exit.
                check, next_check = asyncio.ensure_future(should_stop()), now + POLL_S
            wake = min(at, next_check, now + POLL_S)
            waiting: set[asyncio.Future[Any]] = {exited} if check is None else {exited, check}
            await asyncio.wait(waiting, timeout=wake - now, return_when=asyncio.FIRST_COMPLETED)
            if process.returncode is not None:
                return None, None
            if check is not None and check.done():
                if stop := _stop_reason(check):
                    return stop, None
                check = None
    finally:
        for future in (check, exited):
            if future is not None:
                future.cancel()  # no-op when done


def _stop_reason(check: asyncio.Future[bool | str | None]) -> str | None:
    try:
        answer = check.result()
    except CairnError as e:
        # The store being briefly unreachable is not a cancel; the next check may tell.
        log.warning("checking for a cancel failed: %s", e.message)
        return None
    if isinstance(answer, str):
        return answer or None
    return "cancelled" if answer else None


async def _end_group(process: asyncio.subprocess.Process, grace_s: float, terminate: bool) -> None:
    """Stop what is left of the process group: SIGTERM, SIGKILL after the grace, and wait until
    nothing of it runs. After a normal exit this ends only what it left in the background."""
    group = process.pid
    if not terminate and not _group_alive(group):
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, KILL_WAIT_S)):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
        if await _until_gone(process, group, wait_s):
            return
    log.warning("process group %d still has members after SIGKILL", group)


async def _until_gone(process: asyncio.subprocess.Process, group: int, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while True:
        if process.returncode is not None and not _group_alive(group):
            return True
        left = until - loop.time()
        if left <= 0:
            return False
        with suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.wait()), min(GONE_POLL_S, left))


def _group_alive(group: int) -> bool:
    """Whether any process of the group still runs (zombies, already dead, do not count)."""
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: ask the kernel, which counts zombies too
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # a member running as someone else
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the command name, which may itself hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == group and fields[0] not in (b"Z", b"X"):
            return True
    return False


def open_pty(columns: int = 120, rows: int = 32) -> tuple[int, int]:
    """A pseudo-terminal's master and slave, sized."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    os.set_blocking(master, False)
    return master, slave


class PtyReader(asyncio.StreamReader):
    """What a pseudo-terminal's master reads, as a stream: reads pause while its buffer holds
    READ_BYTES * 4 (as a pipe's transport would), and it ends (closing the master) when the last
    holder of the slave is gone (Linux answers EIO then)."""

    def __init__(self, master: int) -> None:
        super().__init__(limit=READ_BYTES * 4)
        self.master, self.loop = master, asyncio.get_running_loop()
        self.reading = False
        self.closed = False
        self.waiting = 0  # bytes read from the master that the consumer has not taken
        self._resume()

    def _resume(self) -> None:
        if not self.reading and not self.closed:
            self.loop.add_reader(self.master, self._readable)
            self.reading = True

    def _readable(self) -> None:
        try:
            data = os.read(self.master, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            self.feed_eof()
            return
        self.feed_data(data)
        self.waiting += len(data)
        if self.waiting >= READ_BYTES * 4:  # the consumer is behind: wait for it
            self.loop.remove_reader(self.master)
            self.reading = False

    async def read(self, n: int = -1) -> bytes:
        data = await super().read(n)
        self.waiting -= len(data)
        if self.waiting < READ_BYTES:
            self._resume()
        return data

    def close(self) -> None:
        """Stop reading and close the master (also when a process that left the group still
        holds the slave)."""
        if self.closed:
            return
        self.closed = True
        if self.reading:
            self.loop.remove_reader(self.master)
            self.reading = False
        with suppress(OSError):
            os.close(self.master)


class _Output:
    """Reads the pipe as fast as it fills and hands text to the consumer in order, joined, so
    a slow consumer only makes the reads wait once MAX_PENDING_CHARS are waiting."""

    def __init__(self, stream: asyncio.StreamReader, consumer: _Consumer) -> None:
        self.stream, self.consumer, self.loop = stream, consumer, asyncio.get_running_loop()
        self.last = self.loop.time()  # when output last came
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending: list[str] = []
        self.pending_chars, self.eof = 0, False
        self.ready, self.room = asyncio.Event(), asyncio.Event()
        self.room.set()
        self.reader = asyncio.create_task(self._read())
        self.deliverer = asyncio.create_task(self._deliver())

    def failed(self) -> bool:
        done = self.deliverer.done() and not self.deliverer.cancelled()
        return done and self.deliverer.exception() is not None

    async def finish(self) -> None:
        """Let the reader reach the end of the output (the group is gone by now)."""
        try:
            await asyncio.wait_for(asyncio.shield(self.reader), DRAIN_S)
        except TimeoutError:
            # Someone that left the group still holds the pipe: what came is delivered.
            self.reader.cancel()
            with suppress(asyncio.CancelledError):
                await self.reader
            self._end()

    async def delivered(self) -> None:
        await self.deliverer  # raises what the consumer raised

    async def _read(self) -> None:
        while chunk := await self.stream.read(READ_BYTES):
            self.last = self.loop.time()
            self._push(self.decoder.decode(chunk))
            while self.pending_chars > MAX_PENDING_CHARS and not self.deliverer.done():
                self.room.clear()
                await self.room.wait()
        self._end()

    def _end(self) -> None:
        self._push(self.decoder.decode(b"", final=True))
        self.eof = True
        self.ready.set()

    def _push(self, text: str) -> None:
        if text:
            self.pending.append(text)
            self.pending_chars += len(text)
            self.ready.set()

    async def _deliver(self) -> None:
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                if self.pending:
                    text = "".join(self.pending)
                    self.pending.clear()
                    self.pending_chars = 0
                    self.room.set()
                    await self.consumer(text)
                    self.ready.set()  # what came meanwhile, or the end
                elif self.eof:
                    return
        finally:
            self.room.set()  # a reader waiting for room must not wait for a consumer gone
