"""The board's process manager: a ready task without a run gets one queued; a task blocked
only on dependencies that are all resolved now moves to ready."""

from __future__ import annotations

import logging

from cairn.commands.jobs.task_runs import request_task_run
from cairn.commands.settings import Settings
from cairn.commands.tasks.task import transition_task
from cairn.domain.errors import CairnError
from cairn.domain.tasks.states import Status
from cairn.domain.tasks.task import can_become_ready
from cairn.projections.tasks.board import Board
from cairn.streams.store import EventStore

log = logging.getLogger("cairn.scheduler")


class BoardRuns:
    def __init__(self, store: EventStore, board: Board, settings: Settings) -> None:
        self.store, self.board, self.settings = store, board, settings

    async def run_board(self) -> None:
        """Queue a run for each ready task without one; move dependents whose blockers are all
        resolved (and that waited only on them) to ready."""
        contract = self.settings.contract()
        for project, counts in [(p["project"], p["counts"]) for p in await self.board.projects()]:
            ready = []
            if counts[Status.READY.value]:
                ready = await self.board.column_page(project, Status.READY.value, None, 500)
            for _, task in ready:
                if task.active_job_id is None:
                    try:
                        await request_task_run(
                            self.store, task.id, contract, self.settings.flags, actor="scheduler"
                        )
                    except CairnError as e:
                        log.info("task %s not run: %s", task.id, e.message)
            if not counts[Status.BLOCKED.value]:
                continue
            blocked = [t for _, t in await self.board.column_page(project, "blocked", None, 500)]
            related = await self.board.get_tasks([b for t in blocked for b in t.blocked_by])
            for task in blocked:
                if can_become_ready(task, related):
                    try:
                        await transition_task(
                            self.store,
                            task.id,
                            "ready",
                            self.settings.flags,
                            actor="scheduler",
                            reason="blockers resolved",
                            expected_version=task.version,
                        )
                    except CairnError as e:
                        log.info("task %s not moved to ready: %s", task.id, e.message)
