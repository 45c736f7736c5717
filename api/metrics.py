"""What operators collect: `GET /metrics` in Prometheus's text format, and `/readyz`.

Two kinds of figures. This API process's own (commands by route and outcome, request and append
latency) live in a per-app registry and count from the process's start, as Prometheus expects of
counters. The install's (projection lag per projection and partition, jobs by state, queue depth
and head-of-line wait per capability signature, claims, retries, dead letters, workers alive)
are read from the store at each scrape, so every API process reports the same."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter as Tally
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cairn.api.context import Context, context, json_response
from cairn.api.jobs.queue import usage_group
from cairn.api.problems import problem
from cairn.domain.errors import InfrastructureError, VersionConflict
from cairn.projections import layout
from cairn.projections.catalog import all_projections
from cairn.projections.generations import current_spaces
from cairn.streams.correlation import current_correlation
from cairn.streams.envelope import text
from cairn.streams.registry import Registry
from cairn.streams.store import AppendResult, EventStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# /readyz says not ready while a projection is this many events or more behind its log: reads
# would show a state that old. A projector catching up after a restart or rebuild passes it.
READY_MAX_LAG = 10_000
CORRELATION_HEADER = "x-correlation-id"
_SANE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class ProcessMetrics:
    """This process's own figures, in a registry of the app's (so two apps in one test process
    do not share, or clash on, the default registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.commands = Counter(
            "cairn_commands", "Commands (API writes) by route and outcome: ok (2xx), refused "
            "(4xx), failed (5xx)", ["command", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.requests = Histogram(
            "cairn_request_seconds", "API requests by route, seconds", ["route"],
            registry=self.registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.appends = Histogram(
            "cairn_append_seconds", "One atomic append to the log by outcome (ok, conflict, "
            "failed), seconds", ["outcome"], registry=self.registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip


class TimedEventStore(EventStore):
    """The API's event store, timing every append (what a command waits on the log for)."""

    def __init__(self, *args: Any, metrics: ProcessMetrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics

    async def append(self, *args: Any, **kwargs: Any) -> AppendResult:
        started, outcome = time.perf_counter(), "failed"
        try:
            result = await super().append(*args, **kwargs)
            outcome = "ok"
            return result
        except VersionConflict:
            outcome = "conflict"
            raise
        finally:
            self.metrics.appends.labels(outcome).observe(time.perf_counter() - started)


class RequestMetrics:
    """ASGI middleware: count and time each API request by its route's name, and carry a
    correlation id through it (the client's X-Correlation-Id when it is a sane one, else a new
    one), into the logs and back in the answer's header."""

    def __init__(self, app: ASGIApp, metrics: ProcessMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(CORRELATION_HEADER.encode(), b"").decode("latin-1")
        correlation = sent if 0 < len(sent) <= 100 and set(sent) <= _SANE else uuid.uuid4().hex
        token = current_correlation.set(correlation)
        status = 500
        started = time.perf_counter()

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((CORRELATION_HEADER.encode(), correlation.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            current_correlation.reset(token)
            route = scope.get("route")
            if route is not None and scope["path"].startswith("/api/"):
                name = str(getattr(route, "name", "") or "unnamed")
                self.metrics.requests.labels(name).observe(time.perf_counter() - started)
                if scope["method"] in WRITES:
                    outcome = "ok" if status < 400 else "refused" if status < 500 else "failed"
                    self.metrics.commands.labels(name, outcome).inc()


class Snapshot(Collector):
    """The install's figures as read at one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


@dataclass(frozen=True, slots=True)
class Lag:
    events: int  # delivered to no consumer of the group yet
    pending: int  # delivered, not yet acknowledged


async def projection_lag(ctx: Context) -> dict[tuple[str, int], Lag]:
    """Per projection and partition, what its current generation has still to apply (from XINFO
    GROUPS, one pipeline; a group not made yet, or one whose lag the server cannot tell, counts
    the whole log)."""
    partitions = list(ctx.keys.all_partitions())
    names = list(all_projections())
    found = await asyncio.gather(
        *(current_spaces(ctx.client, ctx.keys, name, partitions) for name in names)
    )
    spaces = dict(zip(names, found, strict=True))
    async with ctx.client.pipeline(transaction=False) as pipe:
        for p in partitions:
            pipe.xinfo_groups(ctx.keys.log(p))
            pipe.xlen(ctx.keys.log(p))
        replies = await pipe.execute(raise_on_error=False)
    lag: dict[tuple[str, int], Lag] = {}
    for i, p in enumerate(partitions):
        groups, length = replies[2 * i], replies[2 * i + 1]
        length = length if isinstance(length, int) else 0
        by_name = {} if isinstance(groups, Exception) else {text(g["name"]): g for g in groups}
        for name in names:
            group = by_name.get(spaces[name][p].group) or {}
            behind = group.get("lag")
            lag[(name, p)] = Lag(int(behind if behind is not None else length),
                                 int(group.get("pending") or 0))  # fmt: skip
    return lag


async def queue_depths(ctx: Context) -> dict[str, tuple[int, float]]:
    """Per capability signature: queued jobs, and how long the job that runs next has waited
    (seconds; 0 with none)."""
    spaces = await ctx.queue.spaces()
    signatures = sorted(await ctx.queue.runnable_signatures(spaces))
    if not signatures:
        return {}
    async with ctx.client.pipeline(transaction=False) as pipe:
        for sig in signatures:
            for space in spaces.values():
                pipe.zcard(layout.runnable(space, sig))
                pipe.zrange(layout.runnable(space, sig), 0, 0)
        replies = iter(await pipe.execute())
    now = time.time()
    found: dict[str, tuple[int, float]] = {}
    for sig in signatures:
        depth, heads = 0, []
        for _ in spaces:
            depth += int(next(replies))
            heads += [text(m) for m in next(replies)]
        # Members are `priority|created_at|id`: the best head across partitions runs next.
        waited = now - _moment(min(heads).split("|")[1]) if heads else 0.0
        found[sig] = (depth, max(0.0, waited))
    return found


def _moment(ts: str) -> float:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


async def gather(ctx: Context) -> list[Metric]:
    """The install's figures, read side by side."""
    up = GaugeMetricFamily("cairn_store_up", "1 when the store answers")
    try:
        lag, counts, depths, totals, workers = await asyncio.gather(
            projection_lag(ctx), ctx.queue.counts(), queue_depths(ctx), ctx.queue.metrics(),
            Registry(ctx.client, ctx.keys).workers(),
        )  # fmt: skip
    except InfrastructureError:
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    what = "Events a projection has still to apply"
    lag_family = GaugeMetricFamily("cairn_projection_lag_events", what,
                                   labels=["projection", "partition"])  # fmt: skip
    for (name, p), behind in sorted(lag.items()):
        lag_family.add_metric([name, str(p)], behind.events)
    jobs = GaugeMetricFamily("cairn_jobs", "Jobs by state (queue read model)", labels=["state"])
    for state, n in sorted(counts.items()):
        jobs.add_metric([state], n)
    depth = GaugeMetricFamily("cairn_queue_depth", "Queued jobs per capability signature",
                              labels=["signature"])  # fmt: skip
    wait = GaugeMetricFamily("cairn_queue_wait_seconds", "How long the job that runs next has "
                             "waited, per capability signature", labels=["signature"])  # fmt: skip
    for sig, (n, waited) in depths.items():
        depth.add_metric([sig], n)
        wait.add_metric([sig], round(waited, 3))
    families: list[Metric] = [up, lag_family, jobs, depth, wait]
    for name, field, what in (
        ("cairn_job_claims", "claimed", "Claims of jobs (retries too)"),
        ("cairn_job_retries", "retried", "Failed attempts to be retried"),
        ("cairn_job_dead_letters", "dead_lettered", "Jobs dead-lettered"),
    ):
        family = CounterMetricFamily(name, what)
        family.add_metric([], totals.get(field, 0))
        families.append(family)
    families += usage_families(totals)
    alive = GaugeMetricFamily("cairn_workers_alive", "Workers whose heartbeat is current")
    alive.add_metric([], sum(1 for w in workers if not w.get("stale")))
    families.append(alive)
    return families


def usage_families(totals: dict[str, int]) -> list[Metric]:
    """Agents' tokens and cost, by runtime (the queue's usage counters)."""
    tokens = CounterMetricFamily("cairn_agent_tokens", "Tokens the agents' steps used, by "
                                 "runtime and kind (in, cached, out)", labels=["runtime", "kind"])
    cost = CounterMetricFamily("cairn_agent_cost_usd", "What the agents' steps cost, by runtime "
                               "(the steps that reported or were priced)", labels=["runtime"])
    for runtime, usage in sorted(usage_group(totals, "usage_runtime").items()):
        for kind in ("in", "cached", "out"):
            tokens.add_metric([runtime, kind], usage[f"tokens_{kind}"])
        cost.add_metric([runtime], usage["cost_usd"])
    return [tokens, cost]


async def metrics(request: Request) -> Response:
    """Prometheus's text format: this process's figures, then the install's."""
    ctx = context(request)
    own: ProcessMetrics = request.app.state.metrics
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(Snapshot(await gather(ctx)))
    body = generate_latest(own.registry) + generate_latest(snapshot)
    return Response(body, headers={"Content-Type": CONTENT_TYPE})


async def readyz(request: Request) -> Response:
    """Ready when the store answers and no projection is READY_MAX_LAG events or more behind."""
    ctx = context(request)
    try:
        lag = await projection_lag(ctx)
    except InfrastructureError as e:
        return problem(503, "store_unavailable", f"the store does not answer: {e.message}",
                       "/readyz")  # fmt: skip
    behind = Tally[str]()
    for (name, _), n in lag.items():
        behind[name] += n.events
    late = {name: n for name, n in behind.items() if n >= READY_MAX_LAG}
    if late:
        shown = ", ".join(f"{name} {n} events" for name, n in sorted(late.items()))
        return problem(503, "catching_up", f"projections are catching up ({shown} behind; "
                       f"ready under {READY_MAX_LAG})", "/readyz", {"lag": late})  # fmt: skip
    return json_response({"status": "ready", "lag": dict(behind)})
