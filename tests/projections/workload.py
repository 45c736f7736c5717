"""Test helper: a random but valid-ish mix of task commands through the commands layer."""

from __future__ import annotations

import random

from cairn.commands.tasks.task import add_dependency, create_task, transition_task
from cairn.domain.errors import DomainError
from cairn.domain.tasks.spec import TaskSpec
from cairn.domain.tasks.states import Flags, Status
from cairn.streams.store import EventStore

STATUSES = [s.value for s in Status]


async def run_workload(store: EventStore, rng: random.Random, n: int, projects: int = 3) -> int:
    """Issue `n` commands; returns how many were accepted."""
    ids: list[str] = []
    accepted = 0
    for _ in range(n):
        roll = rng.random()
        try:
            if roll < 0.35 or len(ids) < 2:
                spec = TaskSpec.model_validate({
                    "title": f"t{len(ids)}", "task_type": "chore",
                    "priority": rng.randint(0, 3), "project": f"p{rng.randrange(projects)}",
                })  # fmt: skip
                result = await create_task(store, spec, actor="test")
                ids.append(result.id)
            elif roll < 0.85:
                await transition_task(store, rng.choice(ids), rng.choice(STATUSES), Flags(),
                                      actor="test", force=rng.random() < 0.3)  # fmt: skip
            else:
                await add_dependency(store, rng.choice(ids), rng.choice(ids), actor="test")
            accepted += 1
        except DomainError:
            pass
    return accepted
