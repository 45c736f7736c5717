"""The task state machine as data: states, allowed transitions, guards and flags."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    BACKLOG = "backlog"
    READY = "ready"
    IN_PROGRESS = "in_progress"
    IN_REVIEW = "in_review"
    DONE = "done"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


S = Status
TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    S.BACKLOG: (S.READY, S.CANCELLED),
    S.READY: (S.IN_PROGRESS, S.BLOCKED, S.BACKLOG, S.CANCELLED),
    S.IN_PROGRESS: (S.IN_REVIEW, S.BLOCKED, S.READY, S.CANCELLED),
    S.IN_REVIEW: (S.DONE, S.IN_PROGRESS, S.BLOCKED),
    S.BLOCKED: (S.READY, S.BACKLOG, S.CANCELLED),
    S.DONE: (S.READY,),
    S.CANCELLED: (S.BACKLOG,),
}
# Only with FEATURE_PRD_AUTO_APPROVE_REVIEW=true.
AUTO_APPROVE_TRANSITIONS: dict[Status, tuple[Status, ...]] = {S.IN_PROGRESS: (S.DONE,)}

RESOLVED = frozenset({S.DONE, S.CANCELLED})  # a blocker in these no longer blocks
DEPENDENCY_GUARDED = frozenset({S.READY, S.IN_PROGRESS})  # entered only with blockers resolved
CLAIM_GUARDED = frozenset({S.IN_PROGRESS})  # entered only by a claim or a forced transition
INITIAL_CHOICES = frozenset({S.BACKLOG, S.READY})


@dataclass(frozen=True, slots=True)
class Flags:
    """Feature flags in force; read at the edge and passed in."""

    auto_approve_review: bool = False


def allowed_targets(status: Status, flags: Flags) -> tuple[Status, ...]:
    """Where a task in `status` may go, in table order."""
    extra = AUTO_APPROVE_TRANSITIONS.get(status, ()) if flags.auto_approve_review else ()
    return TRANSITIONS[status] + extra


def describe(flags: Flags) -> dict[str, object]:
    """The machine as data, for the state-machine endpoint."""
    return {
        "states": [s.value for s in Status],
        "initial": [s.value for s in Status if s in INITIAL_CHOICES],
        "transitions": {s.value: [t.value for t in allowed_targets(s, flags)] for s in Status},
        "guards": {
            "dependency": {
                "targets": sorted(s.value for s in DEPENDENCY_GUARDED),
                "rule": "every blocker must be done or cancelled (force bypasses, recorded)",
                "resolved_states": sorted(s.value for s in RESOLVED),
            },
            "claim": {
                "targets": sorted(s.value for s in CLAIM_GUARDED),
                "rule": "entered only by a worker's claim or an explicit force (recorded)",
            },
        },
        "flags": {"FEATURE_PRD_AUTO_APPROVE_REVIEW": flags.auto_approve_review},
    }
