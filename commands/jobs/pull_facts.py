"""What a look at a pull request saw, recorded: its new facts, the follow-up they call for and
the task's moves, in one append (domain/tasks/pulls.py). A poll and a webhook that saw the same
fact append it once; a webhook delivery is recorded under its id, so a redelivery appends
nothing."""

from __future__ import annotations

import msgspec

from cairn.commands.jobs.job import load_jobs
from cairn.commands.jobs.pulls import load_pull
from cairn.commands.runner import CommandResult, Plan, id_for_key, run_command, writes
from cairn.commands.tasks.task import load_tasks
from cairn.domain.jobs.pulls import (
    Observation,
    PrFollowUpDeferred,
    PullRequest,
    deferred_reaction,
    evolve,
    new_facts,
    reactions,
)
from cairn.domain.tasks.pulls import decide_on_pull
from cairn.domain.tasks.states import Flags
from cairn.streams.envelope import now_rfc3339
from cairn.streams.store import EventStore, Meta

WATCHER = "pr-watcher"  # the actor of what the PR's facts do


async def record_look(store: EventStore, pr_id: str, seen: Observation, flags: Flags, *,
                      actor: str = WATCHER, command_id: str | None = None) -> CommandResult:
    """Append what `seen` holds that the PR's events do not, and what it calls for."""

    async def plan() -> Plan:
        pr = await load_pull(store, pr_id)
        facts = new_facts(pr, seen)
        if not facts and pr.deferred is None:
            return Plan(writes=[], subject_version=pr.version)
        after = _after(pr, facts)
        found = reactions(after, facts, seen, pr.checks)
        reaction = deferred_reaction(after, found[0] if found else None)
        if after.state != "open":
            reaction = None  # merged or closed: what waited is moot
        jobs = await load_jobs(store, [after.last_job]) if reaction else {}
        last_job = jobs.get(after.last_job)
        tasks = await load_tasks(store, [pr.task_id]) if pr.task_id else {}
        task = tasks.get(pr.task_id or "")
        # The same PR version gives the same follow-up id: a retry converges on one job.
        follow_id = id_for_key(store.keys, "job", pr.project, f"pr:{pr_id}:{pr.version}")
        decision = decide_on_pull(after, facts, reaction, last_job, task, flags, follow_id)
        if not any(decision.values()):
            return Plan(writes=[], subject_version=pr.version)
        if not facts and reaction is not None and decision.get(pr.id) and all(
                isinstance(e, PrFollowUpDeferred) for e in decision[pr.id]):  # fmt: skip
            return Plan(writes=[], subject_version=pr.version)  # still waiting: nothing new
        versions = {pr_id: pr.version}
        if last_job is not None:
            versions[last_job.id] = last_job.version
        if task is not None:
            versions[task.id] = task.version
        return Plan(writes=writes(decision, versions), subject_version=pr.version)

    return await run_command(store, pr_id, plan, meta=Meta(actor=actor), command_id=command_id)


def _after(pr: PullRequest, facts: list) -> PullRequest:  # type: ignore[type-arg]
    """The PR once `facts` apply (what the reactions are decided on)."""
    state, ts = pr, now_rfc3339()
    for fact in facts:
        state = evolve(state, fact, pr.id, state.version + 1, ts)
    return msgspec.structs.replace(state, id=pr.id)
