"""Proposal events: follow-up work suggested by an agent or a person, and its triage, as facts
in the past tense. Never edit one once written; add an upcaster."""

from __future__ import annotations

from typing import Any, ClassVar

from cairn.domain.events import Event
from cairn.domain.upcast import Upcaster, decode_event


class ProposalEvent(Event, frozen=True, kw_only=True, omit_defaults=True):
    pass


class ProposalSubmitted(ProposalEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "proposal.submitted"
    project: str
    title: str
    description: str = ""
    task: dict[str, Any] = {}  # suggested task fields (task_type, priority, labels, spec, ...)
    origin: dict[str, Any] = {}  # job_id, task_id, repository, actor
    dedup_key: str | None = None
    review_priority: str = "normal"


class ProposalMerged(ProposalEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A proposal with this one's dedup key came while it was open: counted, origin kept."""

    TYPE: ClassVar[str] = "proposal.merged"
    origin: dict[str, Any] = {}
    description: str = ""


class ProposalPromoted(ProposalEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "proposal.promoted"
    target: str  # task or job
    created_id: str


class ProposalDismissed(ProposalEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "proposal.dismissed"
    reason: str


class ProposalReprioritized(ProposalEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "proposal.reprioritized"
    review_priority: str


PROPOSAL_EVENTS: dict[str, type[ProposalEvent]] = {
    cls.TYPE: cls
    for cls in (ProposalSubmitted, ProposalMerged, ProposalPromoted, ProposalDismissed,
                ProposalReprioritized)
}  # fmt: skip
PROPOSAL_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def proposal_event_from(type_: str, schema: int, data: dict[str, Any]) -> ProposalEvent:
    """A proposal event from its envelope's type, schema and data (upcast to the current)."""
    return decode_event(PROPOSAL_EVENTS, PROPOSAL_UPCASTERS, type_, schema, data)
