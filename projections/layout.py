"""The read models' key names, in one place: what the board and the queue keep in their
space (one generation of one partition). A space's own bookkeeping (its applied position, the
set of keys it wrote) is in generations.Space."""

from __future__ import annotations

from cairn.projections.generations import Space


def tasks(space: Space) -> str:
    """Board: every task's document, a hash by task id."""
    return space.key("tasks")


def column(space: Space, project: str, status: str) -> str:
    """Board: one column's cards, a sorted set of `priority|created_at|id` (lex order)."""
    return space.key("col", project, status)


def projects(space: Space) -> str:
    """Board: the projects that have tasks, a set."""
    return space.key("projects")


def counts(space: Space, project: str | None = None) -> str:
    """Tasks (board) or jobs (queue) per status, a hash: of one project, or (queue) of all."""
    return space.key("counts", project) if project is not None else space.key("counts")


def jobs(space: Space) -> str:
    """Queue: every job's document, a hash by job id."""
    return space.key("jobs")


def job_index(space: Space, facet: str, value: str) -> str:
    """Queue: the jobs with one filter value, a sorted set of `created_at|id` (lex order)."""
    return space.key("idx", facet, value)


def all_jobs(space: Space) -> str:
    """Queue: every job, a sorted set of `created_at|id`."""
    return space.key("idx", "all")


def metrics(space: Space) -> str:
    """Queue: telemetry counters, a hash."""
    return space.key("metrics")


def runnable(space: Space, signature: str) -> str:
    """Queue: queued jobs of one capability signature in run order, a sorted set."""
    return space.key("runnable", signature)


def runnable_signatures(space: Space) -> str:
    """Queue: the signatures that have had runnable work, a set."""
    return space.key("runnable-signatures")
