"""Every projection Cairn runs, by name."""

from __future__ import annotations

from cairn.projections.board import BoardProjection
from cairn.projections.imports import ImportProjection
from cairn.projections.projection import Projection
from cairn.projections.proposals import ProposalProjection
from cairn.projections.queue import QueueProjection
from cairn.projections.schedules import ScheduleProjection
from cairn.projections.templates import TemplateProjection


def all_projections() -> dict[str, Projection]:
    return {
        "board": BoardProjection(), "queue": QueueProjection(), "imports": ImportProjection(),
        "proposals": ProposalProjection(), "templates": TemplateProjection(),
        "schedules": ScheduleProjection(),
    }  # fmt: skip
