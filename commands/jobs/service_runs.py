"""Cancelling an orchestrator run: the run's own side (commands/orchestrator/runs.py), and the
job it has going, whose end then ends the run (a cancel during `restart` or `verify` rolls the
service back first, in the worker)."""

from __future__ import annotations

import contextlib

from cairn.commands.jobs.job import cancel_job
from cairn.commands.orchestrator.runs import cancel_run_alone, load_run
from cairn.commands.runner import CommandResult
from cairn.domain.errors import InvalidTransition
from cairn.streams.store import EventStore


async def cancel_run(store: EventStore, run_id: str, *, actor: str) -> CommandResult:
    """The run's cancel, then its job's; the result whose position covers both (a read after
    it sees a queued job's run ended)."""
    result, _ = await cancel_run_alone(store, run_id, actor=actor)
    run = await load_run(store, run_id)
    going = run.apply_job or run.plan_job
    if not run.final and going is not None:
        # A job that ended meanwhile has ended the run with it.
        with contextlib.suppress(InvalidTransition):
            stopped = await cancel_job(store, going, actor=actor,
                                       reason=f"run {run_id} cancelled by {actor}")  # fmt: skip
            if stopped.position:
                return CommandResult(run_id, result.version, stopped.position)
    return result
