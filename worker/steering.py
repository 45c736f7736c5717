"""Talking to a running agent. An operator's message ends the agent's current turn (its process
group stopped; a CLI's session is on disk as it goes) and the same session goes on with the
message; the step is the turns together (their usage summed). A pause holds the agent's
processes (SIGSTOP) and a resume lets them go on (SIGCONT), the lease kept by the worker's
heartbeat meanwhile; the time held counts against neither the step's time nor its silence."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from cairn.domain.jobs.usage import TOKENS
from cairn.worker.sandbox import Guard, descendants


@dataclass
class Turn:
    """One run of the CLI within a step: its prompt, the session it resumes (None: a new one)
    and, for codex, the thread's tokens before it (codex reports the thread's total)."""

    prompt: str
    resume: str | None = None
    before: tuple[int, int, int] | None = None


def steering_prompt(messages: Sequence[str]) -> str:
    """What the resumed session is told: the operator's words, as theirs."""
    said = "\n\n".join(m.strip() for m in messages if m.strip())
    return ("Your operator interrupted you with this message. Take it into account, then "
            f"carry on with the task.\n\n{said}\n")  # fmt: skip


def add_step_usage(total: dict[str, Any] | None, turn: dict[str, Any] | None
                   ) -> dict[str, Any] | None:  # fmt: skip
    """A step's usage with one more turn's: tokens summed; a cost only while every turn had
    one (a step's usage is one step's, with no `steps` count)."""
    if not turn:
        return total
    if not total:
        return dict(turn)
    out = {**total, **{name: int(total.get(name) or 0) + int(turn.get(name) or 0)
                       for name in TOKENS}}  # fmt: skip
    costs = (total.get("cost_usd"), turn.get("cost_usd"))
    if all(isinstance(c, int | float) for c in costs):
        out["cost_usd"] = round(float(costs[0]) + float(costs[1]), 6)  # type: ignore[arg-type]
    else:
        out.pop("cost_usd", None)
    return out


class Hold:
    """An operator's pause of a running step: its processes stopped while the job is paused."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.held_at: float | None = None
        self.held_s = 0.0
        self.released_at = 0.0

    def follow(self, paused: bool) -> None:
        if paused and self.held_at is None:
            self._signal(signal.SIGSTOP)
            self.held_at = asyncio.get_running_loop().time()
        elif not paused:
            self.release()

    def release(self) -> None:
        if self.held_at is None:
            return
        self._signal(signal.SIGCONT)
        now = asyncio.get_running_loop().time()
        self.held_s += now - self.held_at
        self.held_at, self.released_at = None, now

    def times(self) -> tuple[float, float]:
        """What Limits.held asks: the seconds held, and from when silence counts again."""
        now = asyncio.get_running_loop().time()
        if self.held_at is not None:
            return self.held_s + now - self.held_at, now
        return self.held_s, self.released_at

    def _signal(self, sig: signal.Signals) -> None:
        pid = getattr(self.guard, "pid", None)
        if not pid:
            return
        for target in [pid, *descendants(pid)]:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(target, sig)
