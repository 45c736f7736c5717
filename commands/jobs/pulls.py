"""A job's pull request as an aggregate (domain/jobs/pulls.py): opened, or pushed to by a
follow-up, in the same append as the job's `job.published` (so a PR Cairn opened is never
untracked), and read back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cairn.commands.runner import id_for_key, load_states, writes
from cairn.domain.errors import NotFound
from cairn.domain.jobs.events import JobEvent, JobPublished
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.pulls import (
    PrOpened,
    PrPushed,
    PullEvent,
    PullRequest,
    evolve,
    policy_of,
    pull_event_from,
)
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore, StreamWrite


def pull_id(keys: Keys, project: str, url: str) -> str:
    """The aggregate of the PR at `url` (the same URL, the same id, whoever names it)."""
    return id_for_key(keys, "pr", project, f"pull-request:{url}")


def fold_pull(events: list[Envelope]) -> PullRequest | None:
    state: PullRequest | None = None
    for e in events:
        state = evolve(state, pull_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)
    return state


async def load_pulls(store: EventStore, ids: Iterable[str]) -> dict[str, PullRequest]:
    return await load_states(store, ids, "pr", fold_pull)


async def load_pull(store: EventStore, pr_id: str) -> PullRequest:
    found = (await load_pulls(store, [pr_id])).get(pr_id)
    if found is None:
        raise NotFound(f"pull request {pr_id} is not one Cairn opened", pr_id=pr_id)
    return found


async def pull_writes(store: EventStore, job: Job, events: Sequence[JobEvent]) -> list[StreamWrite]:
    """The PR's side of a job's publish: opened by it, or pushed to by it (a follow-up)."""
    published = next((e for e in events if isinstance(e, JobPublished) and e.pr_url), None)
    if published is None or published.pr_url is None:
        return []
    pr_id = pull_id(store.keys, job.project, published.pr_url)
    pr = (await load_pulls(store, [pr_id])).get(pr_id)
    found: list[PullEvent]
    if pr is None:
        publish = dict((job.normalized.get("task") or {}).get("publish") or {})
        auth = job.normalized.get("auth") or {}
        found = [PrOpened(
            url=published.pr_url, number=_number(published.pr_url),
            branch=published.branch or "", base=published.detail.get("base"), job_id=job.id,
            task_id=job.task_id, project=job.project, policy=policy_of(publish),
            auth_ref=auth.get("publishAuthRef") or auth.get("repoAuthRef"),
        )]  # fmt: skip
    elif job.id not in pr.jobs:
        found = [PrPushed(job_id=job.id, commit=published.commit)]
    else:
        found = []
    return writes({pr_id: [*found]}, {pr_id: pr.version if pr else 0})


def _number(url: str) -> int | None:
    tail = url.rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None
