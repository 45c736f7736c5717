"""Proposal commands: submit (merged into an open one of the same dedup key), an agent's
`.cairn/proposals.json` after its job, promote (once), dismiss, reprioritize."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson

from cairn.commands.runner import CommandResult, Plan, id_for_key, load_states, run_command, writes
from cairn.domain.errors import DomainError, NotFound, ValidationFailed
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.planning.proposal_events import proposal_event_from
from cairn.domain.planning.proposals import (
    Proposal,
    ProposalInput,
    ReviewPriority,
    decide_dismiss,
    decide_priority,
    decide_promote,
    decide_submit_proposal,
    evolve,
    parse_proposals_file,
)
from cairn.streams.envelope import Envelope
from cairn.streams.store import EventStore, Meta

PROPOSALS_FILE = ".cairn/proposals.json"
MAX_FILE_BYTES = 1_048_576
SLOTS = 16  # dedup rounds looked at in one read (a key promoted or dismissed that often)


def fold_proposal(events: list[Envelope]) -> Proposal | None:
    state: Proposal | None = None
    for e in events:
        state = evolve(state, proposal_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)
    return state


async def load_proposal(store: EventStore, proposal_id: str) -> Proposal:
    found = (await load_states(store, [proposal_id], "proposal", fold_proposal)).get(proposal_id)
    if found is None:
        raise NotFound(f"proposal {proposal_id} does not exist", proposal_id=proposal_id)
    return found


async def submit_proposal(store: EventStore, given: ProposalInput, *, actor: str) -> CommandResult:
    """A new proposal, or a merge into the open one with its dedup key. A dedup key's
    proposals have ids of their own (`<key>#<round>`): the open round is merged into, a
    closed one makes the next; two submissions at once meet on the same id."""

    written: list[str] = []

    async def plan() -> Plan:
        if given.dedup_key is None:
            new_id = id_for_key(store.keys, "proposal", given.project, None)
            written[:] = [new_id]
            return Plan(writes=writes(decide_submit_proposal(None, new_id, given), {}))
        slots = [id_for_key(store.keys, "proposal", given.project, f"dedup:{given.dedup_key}#{n}")
                 for n in range(SLOTS)]  # fmt: skip
        versions = await store.versions(slots)
        used = [s for s in slots if versions[s]]
        last = await load_proposal(store, used[-1]) if used else None
        new_id = slots[len(used)] if len(used) < SLOTS else id_for_key(
            store.keys, "proposal", given.project, None)  # fmt: skip
        decision = decide_submit_proposal(last, new_id, given)
        subject = next(iter(decision))
        written[:] = [subject]
        return Plan(writes=writes(decision, {last.id: last.version} if last else {}),
                    subject_version=last.version if last and subject == last.id else 0)  # fmt: skip

    subject = id_for_key(store.keys, "proposal", given.project, f"dedup:{given.dedup_key}#0")
    result = await run_command(store, subject, plan, meta=Meta(actor=actor))
    return dataclasses.replace(result, id=written[0])


async def submit_proposals_from_file(
    store: EventStore, job: Job, workspace: Path
) -> dict[str, Any]:
    """After a job with proposeTasks: the proposals its agent wrote in
    `<workspace>/.cairn/proposals.json`, each submitted (or merged); bad entries are reported
    with their paths, never raised, so the run goes on. The report is for the job's outcome."""
    path = workspace / PROPOSALS_FILE
    report: dict[str, Any] = {"submitted": [], "merged": [], "rejected": []}
    if not path.is_file():
        return report
    if path.stat().st_size > MAX_FILE_BYTES:
        report["rejected"].append({"index": None, "errors": [
            {"path": "proposals", "reason": f"larger than {MAX_FILE_BYTES} bytes"}]})  # fmt: skip
        return report
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        report["rejected"].append(
            {"index": None, "errors": [{"path": "proposals", "reason": f"not JSON: {e}"}]}
        )
        return report
    repository = (job.normalized or {}).get("repository")
    origin = {"job_id": job.id, "task_id": job.task_id, "repository": repository}
    good, report["rejected"] = parse_proposals_file(data, origin, job.project)
    for given in good:
        result = await submit_proposal(store, given, actor=f"job:{job.id}")
        report["merged" if result.version > 1 else "submitted"].append(result.id)
    return report


async def promote_proposal(
    store: EventStore, proposal_id: str, target: str, contract: ContractSettings, *, actor: str
) -> tuple[CommandResult, str]:
    """A board task (or a queue job) made from the proposal, in the same append; promoting
    again returns the same one."""
    proposal = await load_proposal(store, proposal_id)
    created_id = id_for_key(store.keys, target, proposal.project, f"promote:{proposal_id}")
    job = None
    if target == "job":
        spec = proposal.task.get("spec") or {}
        job_type, payload = (spec["type"], spec.get("payload", {})) if "type" in spec else (
            "task", spec)  # fmt: skip
        try:
            job = normalize_job(job_type, payload, contract)
        except ValidationFailed as e:
            raise DomainError(f"proposal {proposal_id} suggests no runnable job ({e.message}); "
                              "promote it to a task, or propose it with a task.spec that is a "
                              "job payload", errors=e.errors) from e  # fmt: skip

    first = [proposal]  # the first try decides on what was read above; a retry reads again
    promoted = {"id": created_id}

    async def plan() -> Plan:
        current = first.pop() if first else await load_proposal(store, proposal_id)
        decision = decide_promote(current, target, created_id, job)
        promoted.update(current.promoted_to or {})  # promoted before: that one
        return Plan(writes=writes(decision, {proposal_id: current.version}),
                    subject_version=current.version)  # fmt: skip

    result = await run_command(store, proposal_id, plan, meta=Meta(actor=actor))
    return result, promoted["id"]


async def dismiss_proposal(
    store: EventStore, proposal_id: str, reason: str, *, actor: str
) -> CommandResult:
    async def plan() -> Plan:
        current = await load_proposal(store, proposal_id)
        return Plan(writes=writes(decide_dismiss(current, reason), {proposal_id: current.version}),
                    subject_version=current.version)  # fmt: skip

    return await run_command(store, proposal_id, plan, meta=Meta(actor=actor))


async def set_proposal_priority(store: EventStore, proposal_id: str, priority: ReviewPriority, *,
                                actor: str) -> CommandResult:  # fmt: skip
    async def plan() -> Plan:
        current = await load_proposal(store, proposal_id)
        decision = decide_priority(current, priority)
        return Plan(writes=writes(decision, {proposal_id: current.version}),
                    subject_version=current.version)  # fmt: skip

    return await run_command(store, proposal_id, plan, meta=Meta(actor=actor))
