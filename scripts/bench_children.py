"""The processes a benchmark starts: each in its own session, its output in a log file, stopped
with SIGTERM and then SIGKILL of what is left of its group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def read_tail(path: Path, chars: int = 1500) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@dataclass
class Child:
    """A subprocess we started, its output going to `log`."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    finishes: bool = False  # a producer exits 0 when done; a worker should never exit

    def check(self) -> None:
        """Raise with the end of its output if it has exited when it should not have."""
        code = self.process.poll()
        if code is not None and (code != 0 or not self.finishes):
            raise ChildExited(f"{self.name} exited with {code}:\n{read_tail(self.log)}")


class ChildExited(RuntimeError):
    pass


def start_child(
    name: str,
    argv: Sequence[str],
    env: dict[str, str],
    log: Path,
    cwd: Path = ROOT,
    finishes: bool = False,
) -> Child:
    with log.open("wb") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Child(name, process, log, finishes)


def stop_children(children: Sequence[Child], timeout: float = 15.0) -> None:
    """SIGTERM each child (a pool's parent stops its own workers), wait, then SIGKILL what is
    left of its process group."""
    for child in children:
        if child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"  {child.name} still running {timeout:.0f}s after SIGTERM: killing it")
        signal_group(child, signal.SIGKILL)  # leftovers of its group, if any
        child.process.wait()


def signal_group(child: Child, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # its own session: the group id is its pid
        os.killpg(child.process.pid, sig)
