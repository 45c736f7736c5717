"""What a projection is: a fold of one aggregate kind's events into documents and the keys
that index them, recorded as writes; and the fold of a batch that every projection shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from cairn.projections.generations import Space
from cairn.projections.writes import Writes
from cairn.streams.envelope import Envelope


class Projection(Protocol):
    name: str
    kind: str  # the aggregate kind whose events it folds (`task.*`); others it passes over

    def documents(self, space: Space) -> str:
        """The hash holding the document of each aggregate of `kind`, what a batch loads
        (before the write, outside the script) for the aggregates it touches."""

    def decode(self, raw: bytes) -> Any:
        """One document as stored in `documents`."""

    def apply(
        self, writes: Writes, space: Space, events: list[Envelope], loaded: dict[str, Any]
    ) -> None:
        """Record the writes for `events` onto the `loaded` documents; pure apart from
        recording."""


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=Versioned)


def fold_batch(
    before: dict[str, V], events: list[Envelope], kind: str,
    step: Callable[[V | None, Envelope], V],
) -> dict[str, V]:  # fmt: skip
    """The documents `events` of `kind` change, folded onto `before` with `step`; an event at
    or below a document's version was applied already and is skipped."""
    after = dict(before)
    for e in events:
        if not e.type.startswith(f"{kind}."):
            continue
        state = after.get(e.agg)
        if state is not None and e.ver <= state.version:
            continue
        after[e.agg] = step(state, e)
    return {i: doc for i, doc in after.items() if before.get(i) is not doc}
