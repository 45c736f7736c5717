"""The Proposal aggregate as a decider: a follow-up an agent (or a person) suggests, triaged by
people: merged with an open one of the same dedup key, promoted once to a board task or a
queue job, or dismissed with a reason."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from cairn.domain.decision import Decision
from cairn.domain.errors import CorruptStream, InvalidTransition, ValidationFailed
from cairn.domain.jobs.job import JobSource, SubmitOptions, decide_submit
from cairn.domain.jobs.kinds import NormalizedJob
from cairn.domain.limits import MAX_REASON
from cairn.domain.planning.proposal_events import (
    ProposalDismissed,
    ProposalEvent,
    ProposalMerged,
    ProposalPromoted,
    ProposalReprioritized,
    ProposalSubmitted,
)
from cairn.domain.tasks.spec import Name, Ref, Spec, TaskSpec, Text, Title, parse_model
from cairn.domain.tasks.task import decide_create

MAX_ORIGINS = 50  # a merged proposal keeps this many origins (and counts them all)
MAX_FILE_PROPOSALS = 100


class ReviewPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


RANK = {p: i for i, p in enumerate(("urgent", "high", "normal", "low"))}  # urgent first


class Origin(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    job_id: Ref | None = None
    task_id: Ref | None = None
    repository: Annotated[str, Field(max_length=2_000)] | None = None


class ProposalInput(BaseModel):
    """A proposal as a person posts it or an agent writes it in `.cairn/proposals.json`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)
    project: Name = "default"
    title: Title
    description: Text = ""
    task: Spec = Field(default_factory=dict, description="suggested task fields")
    origin: Origin = Field(default_factory=Origin)
    dedup_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    review_priority: ReviewPriority = ReviewPriority.NORMAL


class Proposal(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    project: str
    title: str
    status: str  # open, promoted, dismissed
    description: str = ""
    task: dict[str, Any] = {}
    origins: list[dict[str, Any]] = []
    count: int = 1
    dedup_key: str | None = None
    review_priority: str = "normal"
    repository: str = ""
    promoted_to: dict[str, str] | None = None
    dismiss_reason: str | None = None
    created_at: str = ""
    updated_at: str = ""


def evolve(state: Proposal | None, event: ProposalEvent, aggregate_id: str, version: int,
           ts: str) -> Proposal:  # fmt: skip
    expected = 1 if state is None else state.version + 1
    if version != expected or (state is None) != isinstance(event, ProposalSubmitted):
        raise CorruptStream(f"proposal {aggregate_id}: {event.TYPE} at version {version} "
                            f"(expected {expected}); the stream is corrupt",
                            aggregate_id=aggregate_id)  # fmt: skip
    replace = msgspec.structs.replace
    match event:
        case ProposalSubmitted():
            s = Proposal(
                id=aggregate_id, version=0, project=event.project, title=event.title,
                status="open", description=event.description, task=event.task,
                origins=[event.origin], dedup_key=event.dedup_key,
                review_priority=event.review_priority,
                repository=str(event.origin.get("repository") or ""), created_at=ts,
            )  # fmt: skip
        case ProposalMerged() if state is not None:
            s = replace(state, count=state.count + 1,
                        origins=[*state.origins, event.origin][-MAX_ORIGINS:])  # fmt: skip
        case ProposalPromoted() if state is not None:
            s = replace(state, status="promoted",
                        promoted_to={"target": event.target, "id": event.created_id})  # fmt: skip
        case ProposalDismissed() if state is not None:
            s = replace(state, status="dismissed", dismiss_reason=event.reason)
        case ProposalReprioritized() if state is not None:
            s = replace(state, review_priority=event.review_priority)
        case _:
            raise TypeError(f"not a proposal event: {event!r}")
    return replace(s, version=version, updated_at=ts)


def decide_submit_proposal(
    open_one: Proposal | None, new_id: str, given: ProposalInput
) -> Decision:
    """A new proposal, or, when one with its dedup key is open, a merge into that one."""
    origin = given.origin.model_dump(exclude_none=True)
    if open_one is not None and open_one.status == "open":
        return {open_one.id: [ProposalMerged(origin=origin, description=given.description)]}
    return {new_id: [ProposalSubmitted(
        project=given.project, title=given.title, description=given.description,
        task=given.task, origin=origin, dedup_key=given.dedup_key,
        review_priority=given.review_priority.value,
    )]}  # fmt: skip


def decide_promote(proposal: Proposal, target: str, created_id: str,
                   job: NormalizedJob | None = None) -> Decision:  # fmt: skip
    """Promote once: a board task (the suggested fields, in backlog) or a queue job, made in
    the same decision; promoting again decides nothing."""
    if proposal.status == "promoted":
        return {}
    if proposal.status != "open":
        raise InvalidTransition(f"proposal {proposal.id} is {proposal.status}; only an open "
                                "proposal is promoted", status=proposal.status)  # fmt: skip
    promoted = ProposalPromoted(target=target, created_id=created_id)
    if target == "job":
        if job is None:
            raise ValidationFailed("a job needs a payload", [{"path": "task.spec",
                                                              "reason": "required"}])  # fmt: skip
        options = SubmitOptions(project=proposal.project, source=JobSource.PROPOSAL)
        return {proposal.id: [promoted], created_id: [*decide_submit(job, options)]}
    fields = {k: v for k, v in proposal.task.items() if k in TASK_FIELDS}
    spec = parse_model(TaskSpec, {
        "task_type": "feature", "priority": 1, **fields, "project": proposal.project,
        "title": proposal.title, "description": proposal.description or fields.get(
            "description", ""), "source": "generated",
    }, root="task")  # fmt: skip
    return {proposal.id: [promoted], **decide_create(created_id, spec, {}, force=False)}


TASK_FIELDS = ("task_type", "priority", "acceptance_criteria", "context_files", "labels",
               "assignee", "pipeline_template", "spec", "description")  # fmt: skip


def decide_dismiss(proposal: Proposal, reason: str) -> Decision:
    if proposal.status == "dismissed":
        return {}
    if proposal.status != "open":
        raise InvalidTransition(f"proposal {proposal.id} is {proposal.status}; only an open "
                                "proposal is dismissed", status=proposal.status)  # fmt: skip
    return {proposal.id: [ProposalDismissed(reason=reason[:MAX_REASON])]}


def decide_priority(proposal: Proposal, priority: ReviewPriority) -> Decision:
    if proposal.review_priority == priority.value:
        return {}
    return {proposal.id: [ProposalReprioritized(review_priority=priority.value)]}


def parse_proposals_file(data: Any, origin: dict[str, Any], project: str
                         ) -> tuple[list[ProposalInput], list[dict[str, Any]]]:  # fmt: skip
    """The valid entries of an agent's `.cairn/proposals.json` (a list, or `{"proposals":
    [...]}`), each with the job's origin and project; the bad ones with their faults."""
    entries = data.get("proposals") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        return [], [{"index": None, "errors": [{"path": "proposals", "reason": "not a list"}]}]
    good: list[ProposalInput] = []
    bad: list[dict[str, Any]] = []
    for i, entry in enumerate(entries[:MAX_FILE_PROPOSALS]):
        if not isinstance(entry, dict):
            bad.append({"index": i, "errors": [{"path": f"proposals[{i}]",
                                                "reason": "not an object"}]})  # fmt: skip
            continue
        fields = {k: v for k, v in entry.items() if k not in ("project", "origin")}
        try:
            good.append(
                parse_model(
                    ProposalInput,
                    {**fields, "project": project, "origin": origin},
                    root=f"proposals[{i}]",
                )
            )
        except ValidationFailed as e:
            bad.append({"index": i, "errors": e.errors})
    if len(entries) > MAX_FILE_PROPOSALS:
        bad.append(
            {
                "index": MAX_FILE_PROPOSALS,
                "errors": [
                    {
                        "path": "proposals",
                        "reason": f"more than {MAX_FILE_PROPOSALS}; the rest were left out",
                    }
                ],
            }
        )
    return good, bad
