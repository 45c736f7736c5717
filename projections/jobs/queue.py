"""The queue read model: every job's current state, an index per filter value (newest first,
lex-ordered `created_at|id` members), counts per status, and the metrics behind telemetry.

Finished jobs are kept compact (docs/decisions/0006): a terminal job's document is stored
deflated against a preset dictionary, and no job is indexed under an empty filter value (a
filter on one reads a wider index and checks each document). Both are functions of the log
alone, so a rebuild writes the same bytes."""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec

from cairn.domain.jobs.dispatch import run_order_key, signature
from cairn.domain.jobs.events import (
    JobCancelled,
    JobClaimed,
    JobDeadLettered,
    JobFailed,
    JobLeaseExpired,
    JobLegacySubmitted,
    JobPublished,
    JobStepFinished,
    JobSubmitted,
    JobSucceeded,
    job_event_from,
)
from cairn.domain.jobs.job import TERMINAL, Job, evolve
from cairn.projections import layout
from cairn.projections.generations import Space, current_spaces
from cairn.projections.projection import documents_by_id, fold_batch
from cairn.projections.writes import Writes
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope, text
from cairn.streams.keys import Keys

NAME = "queue"
FILTERS = ("status", "type", "runtime", "skill", "publishMode", "source", "repository", "project")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Job).decode
# A stored document is JSON ("{") or, for a finished job, this byte then the JSON deflated
# (raw, level 9) against _DICTIONARY_1: a finished no-op job's 1,362 bytes become 98. The
# dictionary never changes (documents written with it must stay readable); a better one would
# be written under another first byte, beside this one.
_DEFLATED_1 = b"\x01"
_DICTIONARY_1 = (
    b'"steps":[{"index":0,"step_id":"","title":"","status":"succeeded","started_at":"2026-'
    b'","finished_at":"2026-","exit_status":0,"duration_ms":,"files":0,"insertions":0,'
    b'"deletions":0,"usage":null,"error":null}],"branches":{"default":"main","starting":"main",'
    b'"new":"cairn/2026","working":"cairn/2026","attempt":1},"publish":{"outcome":"PUBLISHED_PR",'
    b'"artifacts":[{"name":"","kind":"log","size":,"sha256":"","path":"logs/steps/step-1.log",'
    b'"attempt":1}],"outcome":{"status":"failed","error":{"code":"","message":"","retryable":'
    b'false},"stage":"execute"},{"id":"job-00-","version":,"project":"default","job_type":'
    b'"task","submitted_type":"task","source":"board","payload":{"repository":"","targetRuntime":'
    b'"claude","task":{"instructions":"","publish":{"mode":"pr"}}},"normalized":{"repository":'
    b'"","targetRuntime":"codex","requiredCapabilities":[],"auth":{"repoAuthRef":null,'
    b'"publishAuthRef":null},"task":{"instructions":"","skill":{"id":"auto","args":{},'
    b'"requiredCapabilities":[]},"runtime":{"mode":null,"model":null,"effort":null},"git":'
    b'{"startingBranch":null,"newBranch":null},"publish":{"mode":"branch","prBaseBranch":null,'
    b'"commitMessage":null,"prTitle":null,"prBody":null,"verificationSkipReason":null},'
    b'"steps":[],"proposeTasks":false,"container":null}},"required_capabilities":["codex","gh",'
    b'"git"],"priority":1,"max_attempts":3,"affinity_key":null,"task_id":"task-00-","status":'
    b'"cancelled","attempt":2,"epoch":2,"worker_id":"","lease_ms":120000,"released":false,'
    b'"not_before":null,"stages":[{"stage":"prepare","status":"succeeded","started_at":"2026-'
    b'","attempt":1,"finished_at":"2026-","detail":{}}],"steps":[],"branches":null,"publish":'
    b'null,"paused":false,"pause_reason":null,"operator_messages":[],"artifacts":[],"outcome":'
    b'{"status":"succeeded","summary":"","publish_outcome":null},"warnings":[],'
    b'"resubmitted_from":null,"resubmitted_as":null,"promoted_task_id":null,"prompt":null,'
    b'"cancel_reason":null,"created_at":"2026-","updated_at":"2026-","claimed_at":"2026-",'
    b'"started_at":"2026-","finished_at":"2026-"}'
    b'{"id":"job-00-","version":9,"project":"default","job_type":"noop","submitted_type":"noop",'
    b'"source":"queue","payload":{},"normalized":{"sleepMs":0},"required_capabilities":["noop"],'
    b'"priority":0,"max_attempts":3,"affinity_key":null,"task_id":null,"status":"succeeded",'
    b'"attempt":1,"epoch":1,"worker_id":"","lease_ms":30000,"released":false,"not_before":null,'
    b'"stages":[{"stage":"prepare","status":"succeeded","started_at":"2026-","attempt":1,'
    b'"finished_at":"2026-","detail":{}},{"stage":"execute","status":"succeeded","started_at":'
    b'"2026-","attempt":1,"finished_at":"2026-","detail":{"handler":"noop"}},{"stage":"publish",'
    b'"status":"skipped","started_at":"2026-","attempt":1,"finished_at":"2026-","detail":'
    b'{"mode":"none"}}],"steps":[],"branches":null,"publish":null,"paused":false,"pause_reason":'
    b'null,"operator_messages":[],"artifacts":[],"outcome":{"status":"succeeded","summary":'
    b'"noop","publish_outcome":null},"warnings":[],"resubmitted_from":null,"resubmitted_as":null,'
    b'"promoted_task_id":null,"prompt":null,"cancel_reason":null,"created_at":"2026-",'
    b'"updated_at":"2026-","claimed_at":"2026-","started_at":"2026-","finished_at":"2026-"}'
)


def encode_job(job: Job) -> bytes:
    """A job's document as stored: JSON, deflated once the job is finished (it is read, and
    rarely written again)."""
    raw = _encode(job)
    if job.status not in TERMINAL:
        return raw
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY_1)
    return _DEFLATED_1 + packer.compress(raw) + packer.flush()


def decode_job(raw: bytes) -> Job:
    """A stored document, either form."""
    if raw[:1] == _DEFLATED_1:
        unpacker = zlib.decompressobj(-15, _DICTIONARY_1)
        raw = unpacker.decompress(raw[1:]) + unpacker.flush()
    return _decode(raw)


def facets(job: Job) -> dict[str, str]:
    """The filter values of a job, from its normalized view."""
    task = job.normalized.get("task") or {}
    return {
        "status": job.status,
        "type": job.submitted_type,
        "runtime": str(job.normalized.get("targetRuntime") or ""),
        "skill": str((task.get("skill") or {}).get("id") or ""),
        "publishMode": str((task.get("publish") or {}).get("mode") or ""),
        "source": job.source,
        "repository": str(job.normalized.get("repository") or ""),
        "project": job.project,
    }


def member(job: Job) -> str:
    return f"{job.created_at}|{job.id}"


def index_key(space: Space, facet: str, value: str) -> str:
    return layout.job_index(space, facet, value)


class QueueProjection:
    name = NAME
    kind = "job"

    def documents(self, space: Space) -> str:
        return layout.jobs(space)

    def decode(self, raw: bytes) -> Any:
        return decode_job(raw)

    def apply(self, pipe: Writes, space: Space, events: list[Envelope], loaded: Any) -> None:
        before: dict[str, Job] = loaded
        metrics: Counter[str] = Counter()
        timeline: Counter[tuple[str, str]] = Counter()

        def step(state: Job | None, e: Envelope) -> Job:
            event = job_event_from(e.type, e.schema, e.data)
            job = evolve(state, event, e.agg, e.ver, e.ts)
            count_metrics(metrics, job, event)
            count_timeline(timeline, job, event)
            return job

        changed = fold_batch(before, events, self.kind, step)
        if not changed:
            return
        pipe.hset(layout.jobs(space), mapping={i: encode_job(j) for i, j in changed.items()})
        removed: dict[str, list[str]] = defaultdict(list)
        added: dict[str, dict[str, float]] = defaultdict(dict)
        counts: Counter[tuple[str, str]] = Counter()
        signatures: set[str] = set()
        for job_id, new in changed.items():
            old = before.get(job_id)
            new_facets = facets(new)
            old_facets = facets(old) if old is not None else {}
            if old is None:
                added[layout.all_jobs(space)][member(new)] = 0
            for facet, value in new_facets.items():
                if old_facets.get(facet) != value:
                    if old is not None and old_facets[facet]:  # an empty value: no index
                        removed[index_key(space, facet, old_facets[facet])].append(member(old))
                    if value:
                        added[index_key(space, facet, value)][member(new)] = 0
            # Runnable work in run order, one index per capability signature: what the
            # scheduler reads for the signatures some worker can take, best first.
            was = runnable_key(space, old) if old is not None and old.status == "queued" else None
            now = runnable_key(space, new) if new.status == "queued" else None
            if was is not None and was != now:
                removed[was[0]].append(was[1])
            if now is not None and now != was:
                added[now[0]][now[1]] = 0
                signatures.add(signature(new.required_capabilities))
            if old is None or old.status != new.status:
                if old is not None:
                    counts[(old.project, old.status)] -= 1
                counts[(new.project, new.status)] += 1
        for key, members in removed.items():
            pipe.zrem(key, *members)
        for key, mapping in added.items():
            pipe.zadd(key, mapping)
        for (project, status), delta in counts.items():
            if delta:
                pipe.hincrby(layout.counts(space), status, delta)
                pipe.hincrby(layout.counts(space, project), status, delta)
        for name, delta in metrics.items():
            pipe.hincrby(layout.metrics(space), name, delta)
        for (day, name), delta in timeline.items():
            pipe.hincrby(timeline_key(space, day), name, delta)
        if signatures:
            pipe.sadd(layout.runnable_signatures(space), *sorted(signatures))


def runnable_key(space: Space, job: Job) -> tuple[str, str]:
    """Where a queued job sits in the runnable indexes: its signature's index and member."""
    sig = signature(job.required_capabilities)
    return layout.runnable(space, sig), run_order_key(job.priority, job.created_at, job.id)


def count_metrics(metrics: Counter[str], job: Job, event: Any) -> None:
    """Migration telemetry: volume by type, failures by runtime and stage, publish outcomes."""
    runtime = str(job.normalized.get("targetRuntime") or "none")
    match event:
        case JobSubmitted():
            metrics[f"submitted|{job.submitted_type}"] += 1
        case JobLegacySubmitted():
            metrics[f"legacy|{job.submitted_type}"] += 1
        case JobFailed():
            metrics[f"failed_runtime|{runtime}"] += 1
            metrics[f"failed_stage|{event.stage or 'unknown'}"] += 1
        case JobPublished(outcome=outcome):  # what it published (PUBLISH_DISABLED: nothing)
            metrics[f"publish|{outcome}"] += 1
        case JobSucceeded():
            metrics[f"succeeded_runtime|{runtime}"] += 1
        case JobClaimed():
            metrics["claimed"] += 1
        case JobDeadLettered():
            metrics["dead_lettered"] += 1
    # Operators' totals (GET /metrics): attempts that end re-queued for another one.
    if isinstance(event, JobFailed | JobLeaseExpired) and event.retry_at is not None:
        metrics["retried"] += 1
    if isinstance(event, JobStepFinished) and event.usage:
        count_usage(metrics, f"usage_runtime|{runtime}", event.usage)
        count_usage(metrics, f"usage_project|{job.project}", event.usage)


USAGE_COUNTERS = ("tokens_in", "tokens_cached", "tokens_out")


def count_usage(metrics: Counter[str], prefix: str, usage: dict[str, Any]) -> None:
    """A step's tokens and cost into counters `<prefix>|<field>` (cost in micro-USD, as the
    counters are integers); the steps without a cost are counted, never priced."""
    for name in USAGE_COUNTERS:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            metrics[f"{prefix}|{name}"] += value
    metrics[f"{prefix}|steps"] += 1
    cost = usage.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        metrics[f"{prefix}|cost_musd"] += round(cost * 1_000_000)
    else:
        metrics[f"{prefix}|steps_without_cost"] += 1


def timeline_key(space: Space, day: str) -> str:
    """Queue: one UTC day's per-minute telemetry counters (`<kind>|HH:MM`), a hash."""
    return space.key("metrics", day)


def count_timeline(timeline: Counter[tuple[str, str]], job: Job, event: Any) -> None:
    """Telemetry over time, by the minute of the event (`job.updated_at`): submissions, jobs
    finished by outcome (throughput), and the queue wait of first claims (sum and count)."""
    day, minute = job.updated_at[:10], job.updated_at[11:16]
    if len(day) != 10 or len(minute) != 5:
        return
    match event:
        case JobSubmitted():
            timeline[(day, f"submitted|{minute}")] += 1
        case JobSucceeded():
            timeline[(day, f"succeeded|{minute}")] += 1
        case JobFailed(retry_at=None):
            timeline[(day, f"failed|{minute}")] += 1
        case JobDeadLettered():
            timeline[(day, f"dead_letter|{minute}")] += 1
        case JobCancelled():
            timeline[(day, f"cancelled|{minute}")] += 1
        case JobClaimed(attempt=1) if job.claimed_at and job.created_at:
            waited = _moment(job.claimed_at) - _moment(job.created_at)
            timeline[(day, f"wait_ms|{minute}")] += max(0, round(waited * 1000))
            timeline[(day, f"claims|{minute}")] += 1


def _moment(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


class Queue:
    """Queries over the queue read model; nothing here reads an event stream."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.client, self.keys = client, keys

    async def spaces(self, partitions: list[int] | None = None) -> dict[int, Space]:
        wanted = list(self.keys.all_partitions()) if partitions is None else partitions
        return await current_spaces(self.client, self.keys, NAME, wanted)

    async def get_jobs(self, ids: list[str]) -> dict[str, Job]:
        """Jobs by id (unknown ids left out)."""
        return await documents_by_id(self.client, self.keys, QueueProjection(), ids)

    async def list_jobs(
        self, filters: dict[str, str], cursor: str | None, limit: int
    ) -> tuple[list[Job], str | None]:
        """Jobs matching every filter, newest first, after `cursor` (a member)."""
        partitions = [self.keys.partition_of(filters["project"])] if "project" in filters else None
        spaces = await self.spaces(partitions)
        drivers = await self._drivers(spaces, filters)
        upper = {p: cursor for p in spaces}
        live = set(spaces)
        items: list[Job] = []
        while live and len(items) < limit:
            async with self.client.pipeline(transaction=False) as pipe:
                order = sorted(live)
                for p in order:
                    high = f"({upper[p]}" if upper[p] else "+"
                    pipe.zrange(drivers[p], high, "-", desc=True, bylex=True, offset=0, num=limit)
                pages = dict(zip(order, await pipe.execute(), strict=True))
            # Accept only what no partition still holding more can outrank (a k-way merge).
            full = [text(page[-1]) for page in pages.values() if len(page) == limit]
            floor = max(full) if full else ""
            candidates = sorted(
                ((text(m), p) for p, page in pages.items() for m in page if text(m) >= floor),
                reverse=True,
            )
            for p, page in pages.items():
                if len(page) < limit:
                    live.discard(p)
            if not candidates:
                break
            docs = await self._docs(spaces, candidates)
            for name, p in candidates:
                upper[p] = name
                job = docs.get(name.rsplit("|", 1)[1])
                if job is not None and all(facets(job)[k] == v for k, v in filters.items()):
                    items.append(job)
                    if len(items) == limit:
                        return items, name
        return items, None

    async def _drivers(self, spaces: dict[int, Space], filters: dict[str, str]) -> dict[int, str]:
        """Per partition, the smallest index among the filters (or all jobs). An empty value
        has no index: what matches it is found by checking the documents of a wider one."""
        indexed = {k: v for k, v in filters.items() if v}
        options = {p: [index_key(s, k, v) for k, v in indexed.items()] for p, s in spaces.items()}
        drivers = {p: layout.all_jobs(s) for p, s in spaces.items()}
        if not indexed:
            return drivers
        async with self.client.pipeline(transaction=False) as pipe:
            for keys in options.values():
                for key in keys:
                    pipe.zcard(key)
            sizes = await pipe.execute()
        at = 0
        for p, keys in options.items():
            these = sizes[at : at + len(keys)]
            at += len(keys)
            drivers[p] = keys[these.index(min(these))]
        return drivers

    async def _docs(
        self, spaces: dict[int, Space], candidates: list[tuple[str, int]]
    ) -> dict[str, Job]:
        by_partition: dict[int, list[str]] = defaultdict(list)
        for name, p in candidates:
            by_partition[p].append(name.rsplit("|", 1)[1])
        async with self.client.pipeline(transaction=False) as pipe:
            for p, ids in by_partition.items():
                pipe.hmget(layout.jobs(spaces[p]), ids)
            replies = await pipe.execute()
        found: dict[str, Job] = {}
        for ids, docs in zip(by_partition.values(), replies, strict=True):
            found.update({i: decode_job(d) for i, d in zip(ids, docs, strict=True) if d})
        return found

    async def runnable_signatures(self, spaces: dict[int, Space] | None = None) -> set[str]:
        """Every signature that has had runnable work (a set per partition, never pruned:
        signatures are few)."""
        spaces = spaces or await self.spaces()
        async with self.client.pipeline(transaction=False) as pipe:
            for space in spaces.values():
                pipe.smembers(layout.runnable_signatures(space))
            replies = await pipe.execute()
        return {text(sig) for members in replies for sig in members}

    async def runnable(
        self, sig: str, page: int, skip: set[str] | frozenset[str] = frozenset(), chunk: int = 64,
        spaces: dict[int, Space] | None = None,
    ) -> AsyncIterator[list[Job]]:  # fmt: skip
        """The queued jobs of signature `sig` across partitions in run order (priority desc,
        created_at asc, id), without the ids in `skip`; read `page` names a partition at a
        time and decoded `chunk` jobs at a time, so a caller that has what it needs stops.

        Each step merges the partitions' pages up to the lowest last name of a full page
        (beyond it a partition may hide better work), then goes on after it."""
        spaces = spaces or await self.spaces()
        after = dict.fromkeys(spaces, "-")
        while after:
            async with self.client.pipeline(transaction=False) as pipe:
                for p, lower in after.items():
                    pipe.zrange(
                        layout.runnable(spaces[p], sig), lower, "+", bylex=True, offset=0, num=page
                    )
                pages = {
                    p: [text(m) for m in names]
                    for p, names in zip(after, await pipe.execute(), strict=True)
                }
            full = [names[-1] for names in pages.values() if len(names) == page]
            ceiling = min(full) if full else None
            candidates = sorted(
                (name, p)
                for p, names in pages.items()
                for name in names
                if (ceiling is None or name <= ceiling) and name.rsplit("|", 1)[1] not in skip
            )
            for at in range(0, len(candidates), chunk):
                part = candidates[at : at + chunk]
                docs = await self._docs(spaces, part)
                found = [docs.get(name.rsplit("|", 1)[1]) for name, _ in part]
                yield [job for job in found if job is not None]
            if ceiling is None:
                return
            after = {
                p: f"({ceiling}"
                for p, names in pages.items()
                if names and (len(names) == page or names[-1] > ceiling)
            }

    async def counts(self, project: str | None = None) -> dict[str, int]:
        partitions = [self.keys.partition_of(project)] if project else None
        total: Counter[str] = Counter()
        for space in (await self.spaces(partitions)).values():
            key = layout.counts(space, project or None)
            for status, n in (await self.client.hgetall(key)).items():
                total[text(status)] += int(n)
        return dict(total)

    async def timeline(self, days: list[str]) -> dict[str, dict[str, int]]:
        """Per-minute telemetry of the given UTC days (`YYYY-MM-DD`), summed over partitions:
        {day: {"<kind>|HH:MM": n}}."""
        spaces = await self.spaces()
        async with self.client.pipeline(transaction=False) as pipe:
            for day in days:
                for space in spaces.values():
                    pipe.hgetall(timeline_key(space, day))
            replies = iter(await pipe.execute())
        found: dict[str, dict[str, int]] = {}
        for day in days:
            total: Counter[str] = Counter()
            for _ in spaces:
                for name, n in next(replies).items():
                    total[text(name)] += int(n)
            found[day] = dict(total)
        return found

    async def metrics(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for space in (await self.spaces()).values():
            for name, n in (await self.client.hgetall(layout.metrics(space))).items():
                total[text(name)] += int(n)
        return dict(total)
