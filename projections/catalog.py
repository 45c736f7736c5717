"""Every projection Cairn runs, by name."""

from __future__ import annotations

from projections.board import BoardProjection
from projections.queue import QueueProjection
from projections.runner import Projection


def all_projections() -> dict[str, Projection]:
    return {"board": BoardProjection(), "queue": QueueProjection()}
