"""The Proposal decider: a sequence of triage commands folds to what they said; promote and
dismiss happen once; a duplicate of an open proposal is counted into it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.decision import Decision, events_for
from cairn.domain.errors import InvalidTransition
from cairn.domain.planning.proposal_events import ProposalEvent
from cairn.domain.planning.proposals import (
    Proposal,
    ProposalInput,
    ReviewPriority,
    decide_dismiss,
    decide_priority,
    decide_promote,
    decide_submit_proposal,
    evolve,
)

PID = "proposal-01-" + "a" * 26
TID = "task-01-" + "b" * 26


def apply(state: Proposal | None, decision: Decision) -> Proposal | None:
    for event in events_for(decision, PID, ProposalEvent):
        version = state.version + 1 if state else 1
        state = evolve(state, event, PID, version, f"t{version}")
    return state


@given(st.lists(st.sampled_from(["dup", "promote", "dismiss", "urgent", "low"]), max_size=12))
def test_triage_folds_to_what_was_decided(commands: list[str]) -> None:
    given_ = ProposalInput(title="Add caching", dedup_key="cache")
    state = apply(None, decide_submit_proposal(None, PID, given_))
    assert state is not None
    dups = promotions = 0
    for command in commands:
        before = state
        try:
            if command == "dup":
                decision = decide_submit_proposal(state, "proposal-01-" + "c" * 26, given_)
                dups += PID in decision
            elif command == "promote":
                decision = decide_promote(state, "task", TID)
                promotions += TID in decision
            elif command == "dismiss":
                decision = decide_dismiss(state, "not now")
            else:
                decision = decide_priority(state, ReviewPriority(command))
        except InvalidTransition:
            assert before.status != "open"
            continue
        state = apply(state, decision)
        assert state is not None
    assert state.count == 1 + dups and promotions <= 1
    assert (state.status == "promoted") == (promotions == 1)
    assert state.promoted_to in (None, {"target": "task", "id": TID})
