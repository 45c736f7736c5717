"""The scheduler's auto_ready part: each import with tasks still to release gets its next
unblocked tasks moved to ready, never more than its hint ready or in progress at once. The
read models say when a release could happen; the command decides on the event store."""

from __future__ import annotations

import logging

from cairn.commands.planning.imports import release_import_tasks
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.domain.planning.imports import decide_release
from cairn.projections.planning.imports import Imports
from cairn.projections.tasks.board import Board
from cairn.streams.store import EventStore

log = logging.getLogger("cairn.scheduler")


class ImportReleases:
    def __init__(
        self, store: EventStore, imports: Imports, board: Board, settings: Settings
    ) -> None:
        self.store, self.imports, self.board, self.settings = store, imports, board, settings

    async def release(self) -> None:
        """Release what each pending import can; the read models may lag, so a release they
        suggest is decided again on the store's state."""
        pending = await self.imports.pending()
        if not pending:
            return
        jobs = list((await self.imports.get(pending)).values())
        # Every pending import's tasks, then their blockers outside them: two reads a round.
        tasks = await self.board.get_tasks(list(dict.fromkeys(t for j in jobs for t in j.order)))
        tasks.update(await self.board.get_tasks(
            list(dict.fromkeys(b for t in tasks.values() for b in t.blocked_by if b not in tasks))
        ))  # fmt: skip
        for job in jobs:
            if not decide_release(job, tasks, self.settings.flags):
                continue
            try:
                await release_import_tasks(self.store, job.id, self.settings.flags)
            except CairnError as e:
                log.info("import %s: no release: %s", job.id, e.message)
