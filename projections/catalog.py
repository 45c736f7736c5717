"""Every projection Cairn runs, by name."""

from __future__ import annotations

from cairn.projections.jobs.pulls import PullProjection
from cairn.projections.jobs.queue import QueueProjection
from cairn.projections.orchestrator.catalog import RunProjection, ServiceProjection
from cairn.projections.planning.imports import ImportProjection
from cairn.projections.planning.proposals import ProposalProjection
from cairn.projections.planning.schedules import ScheduleProjection
from cairn.projections.planning.templates import TemplateProjection
from cairn.projections.projection import Projection
from cairn.projections.tasks.board import BoardProjection
from cairn.projections.tasks.projects import ProjectProjection


def all_projections() -> dict[str, Projection]:
    return {
        "board": BoardProjection(), "queue": QueueProjection(), "imports": ImportProjection(),
        "proposals": ProposalProjection(), "templates": TemplateProjection(),
        "schedules": ScheduleProjection(), "projects": ProjectProjection(),
        "pulls": PullProjection(), "orchestrator_runs": RunProjection(),
        "services": ServiceProjection(),
    }  # fmt: skip
