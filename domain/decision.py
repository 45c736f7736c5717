"""A decision: the new events of each aggregate a command touches, appended together (all or
none). Every decider that touches more than one aggregate returns one."""

from __future__ import annotations

from typing import TypeVar

from cairn.domain.events import Event

# Aggregate id -> its new events, in order. The command's subject comes first: a command
# replayed by its id reports the first aggregate's version. An aggregate that gains nothing may
# be left out or map to an empty list.
Decision = dict[str, list[Event]]

E = TypeVar("E", bound=Event)


def events_for(decision: Decision, aggregate_id: str, kind: type[E]) -> list[E]:
    """The events `decision` gives one aggregate, typed as the events of its kind."""
    events = decision.get(aggregate_id, [])
    typed = [e for e in events if isinstance(e, kind)]
    if len(typed) != len(events):
        raise TypeError(f"{aggregate_id} is given events of another kind: {events!r}")
    return typed
