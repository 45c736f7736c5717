"""Benchmark the dashboard's server render time: the board of a project with 2,000 tasks and
queue pages over 100,000 jobs, each beside the raw read-model query of the same page in the
same run (the reads the page makes, without routing, session or template), with the ratio.

    python scripts/bench_dashboard.py [--quick] [--json]

Seeding goes through the commands layer (the same appends the API makes), many at a time,
then the projector catches up (in this process) before anything is timed. Pages are rendered
by the app in-process through ASGI (no sockets): what is timed is the server's work. The goal
is a p95 under 300 ms for each page.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from cairn.api.app import create_app
from cairn.api.auth import store_token
from cairn.api.context import Context
from cairn.api.jobs.queue import ListQuery
from cairn.commands.jobs.job import JobRequest, submit_job
from cairn.commands.jobs.task_runs import request_task_run
from cairn.commands.settings import Settings
from cairn.commands.tasks.task import create_task, transition_task
from cairn.domain.tasks.spec import TaskSpec
from cairn.projections.catalog import all_projections
from cairn.projections.generations import current_spaces
from cairn.projections.projector import run_projections
from cairn.streams.connection import connect
from cairn.streams.keys import Keys
from cairn.streams.registry import Registry
from cairn.streams.server import start_server
from cairn.streams.store import EventStore

TOKEN = "bench-dashboard-Token-0123456789abcdefXYZ"
PROJECT = "bench"
RUNTIMES = ["codex", "claude", "gemini"]
# Where the board's 2,000 tasks end up, and the moves (forced where a claim would be) that
# take a task from backlog there.
SHARES = {"backlog": 0.3, "ready": 0.15, "in_progress": 0.05, "in_review": 0.05,
          "done": 0.35, "blocked": 0.05, "cancelled": 0.05}  # fmt: skip
PATHS = {"backlog": [], "ready": ["ready"], "in_progress": ["ready", "in_progress"],
         "in_review": ["ready", "in_progress", "in_review"],
         "done": ["ready", "in_progress", "in_review", "done"], "blocked": ["ready", "blocked"],
         "cancelled": ["cancelled"]}  # fmt: skip


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 1)


async def in_lanes(calls: list[Callable[[], Awaitable[Any]]], lanes: int = 64) -> list[Any]:
    """Run the calls, `lanes` at a time (their appends go out together: group commit)."""
    results: list[Any] = [None] * len(calls)
    todo = iter(enumerate(calls))

    async def lane() -> None:
        for i, call in todo:
            results[i] = await call()

    await asyncio.gather(*(lane() for _ in range(lanes)))
    return results


async def seed_board(store: EventStore, settings: Settings, n_tasks: int) -> None:
    rng = random.Random(2)
    statuses = [s for s, share in SHARES.items() for _ in range(round(share * n_tasks))]
    statuses = (statuses + ["backlog"] * n_tasks)[:n_tasks]
    rng.shuffle(statuses)

    def create(i: int) -> Callable[[], Awaitable[Any]]:
        spec = TaskSpec(
            project=PROJECT, title=f"Task {i}: {rng.choice(['Fix', 'Add', 'Refactor'])} the "
            f"{rng.choice(['login', 'queue', 'export', 'search', 'billing'])} flow",
            task_type=rng.choice(["feature", "bug_fix", "chore", "docs"]),
            priority=rng.randrange(4), labels=rng.sample(["ui", "api", "db", "infra"], 2),
            description="Seeded for the benchmark.",
        )  # fmt: skip
        return lambda: create_task(store, spec, actor="bench")

    made = await in_lanes([create(i) for i in range(n_tasks)])
    ids = [result.id for result in made]
    flags = settings.flags

    def move(task_id: str, path: list[str]) -> Callable[[], Awaitable[Any]]:
        async def run() -> None:
            for to in path:
                await transition_task(store, task_id, to, flags, actor="bench", force=True,
                                      reason="seeded")  # fmt: skip

        return run

    await in_lanes([move(i, PATHS[s]) for i, s in zip(ids, statuses, strict=True) if PATHS[s]])
    # Some tasks have a run: their cards show its outcome.
    runnable = [i for i, s in zip(ids, statuses, strict=True) if s in ("backlog", "done")][:200]
    contract = settings.contract()
    def run(task_id: str) -> Callable[[], Awaitable[Any]]:
        return lambda: request_task_run(store, task_id, contract, flags, actor="bench", force=True)

    await in_lanes([run(t) for t in runnable])


async def seed_queue(store: EventStore, settings: Settings, n_jobs: int) -> None:
    rng = random.Random(1)
    contract = settings.contract()

    def submit(i: int) -> Callable[[], Awaitable[Any]]:
        repo = f"acme/repo{rng.randrange(20)}"
        payload = {"repository": repo, "targetRuntime": rng.choice(RUNTIMES),
                   "task": {"instructions": f"Job {i}: update the dependency pins",
                            "publish": {"mode": rng.choice(["pr", "branch", "none"])}}}  # fmt: skip
        request = JobRequest("task", payload, rng.randrange(4), 3, None, f"p{rng.randrange(4)}")
        return lambda: submit_job(store, request, contract, actor="bench")

    done = 0
    chunk = 5_000
    while done < n_jobs:
        size = min(chunk, n_jobs - done)
        await in_lanes([submit(done + i) for i in range(size)])
        done += size
        say(f"  {done} jobs")


async def caught_up(ctx: Context) -> None:
    """Until every projection has applied every partition's log."""
    from cairn.streams.groups import group_lag

    keys, client = ctx.keys, ctx.client
    while True:
        behind = 0
        for name in all_projections():
            spaces = await current_spaces(client, keys, name, list(keys.all_partitions()))
            for p, space in spaces.items():
                info = (await group_lag(client, keys.log(p))).get(space.group, {})
                lag = info.get("lag")
                behind += int(await client.xlen(keys.log(p))) if not info else int(lag or 0)
        if not behind:
            return
        say(f"  projector: {behind} events to go")
        await asyncio.sleep(2)


async def stage_page(ctx: Context, stage: str) -> None:
    """The read behind a page filtered by stage status: pages of the index, scanned."""
    from cairn.api.dashboard.queue_page import STAGE_SCAN, stage_status

    found, scanned, cursor = 0, 0, None
    while found < 50 and scanned < STAGE_SCAN:
        batch, cursor = await ctx.queue.list_jobs({}, cursor, min(500, STAGE_SCAN - scanned))
        scanned += len(batch)
        found += sum(1 for job in batch if stage_status(job) == stage)
        if cursor is None:
            return


async def signed_in(http: httpx.AsyncClient) -> None:
    page = await http.get("/login")
    csrf = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    done = await http.post("/login", data={"_csrf": csrf[1], "token": TOKEN, "next": "/tasks"})
    assert done.status_code == 303, done.text


async def timed(call: Callable[[], Awaitable[Any]], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    settings = Settings(redis_url=url, admin_token=TOKEN, data_dir=Path(tempfile.mkdtemp()),
                        default_repository="acme/app")
    client = connect(url)
    keys = Keys(settings.prefix, settings.partitions)
    store = EventStore(client, keys)
    n_tasks, n_jobs = 2_000, (20_000 if args.quick else 100_000)
    results: dict[str, Any] = {"tasks": n_tasks, "jobs": n_jobs}
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projections(client, keys, list(all_projections().values()), stop, lease_ms=15_000)
    )
    app = create_app(settings, client)
    await store_token(client, keys, TOKEN, "admin", "admin")
    ctx: Context = app.state.ctx

    started = time.perf_counter()
    say(f"seeding {n_tasks} tasks on one board ...")
    await seed_board(store, settings, n_tasks)
    say(f"seeding {n_jobs} jobs ...")
    await seed_queue(store, settings, n_jobs)
    results["seed_s"] = round(time.perf_counter() - started, 1)
    await caught_up(ctx)
    results["seed_and_project_s"] = round(time.perf_counter() - started, 1)

    rounds = 30 if args.quick else 100
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cairn") as http:
        await signed_in(http)
        first = (await http.get(f"/tasks?project={PROJECT}")).text
        assert first.count('class="card"') >= 300, "the board did not render its cards"
        listing = (await http.get("/queue")).text
        assert listing.count("data-row") == 50, "the queue page did not render 50 jobs"
        next_cursor = re.search(r'cursor=([^"&]+)', listing)
        assert next_cursor

        async def board_reads() -> None:
            tasks, _ = await asyncio.gather(ctx.board.project_tasks(PROJECT), ctx.board.projects())
            await ctx.queue.get_jobs([t.run_ids[-1] for t in tasks if t.run_ids])

        def queue_reads(filters: dict[str, str], cursor: str | None = None) -> Callable[[], Any]:
            async def read() -> None:
                query = ListQuery.model_validate({**filters, "limit": 50})
                chosen = query.filters()
                await ctx.queue.list_jobs(chosen, cursor, 50)
                await asyncio.gather(Registry(client, keys).workers(),
                                     ctx.queue.counts(chosen.get("project")),
                                     ctx.board.projects())  # fmt: skip

            return read

        def stage_reads(stage: str) -> Callable[[], Any]:
            async def read() -> None:
                await stage_page(ctx, stage)
                await asyncio.gather(Registry(client, keys).workers(), ctx.queue.counts(None),
                                     ctx.board.projects())  # fmt: skip

            return read

        def page(path: str) -> Callable[[], Any]:
            async def get() -> None:
                response = await http.get(path)
                assert response.status_code == 200, response.status_code

            return get

        cases = {
            "board (2,000 tasks)": (page(f"/tasks?project={PROJECT}"), board_reads),
            "queue, first page": (page("/queue"), queue_reads({})),
            "queue, status+runtime": (
                page("/queue?status=queued&runtime=claude"),
                queue_reads({"status": "queued", "runtime": "claude"}),
            ),
            "queue, project+repository": (
                page("/queue?project=p2&repository=acme/repo7"),
                queue_reads({"project": "p2", "repository": "acme/repo7"}),
            ),
            "queue, stage status (scanned)": (
                page("/queue?stage=prepare:failed"), stage_reads("prepare:failed")
            ),
            "queue, second page": (
                page(f"/queue?cursor={next_cursor[1]}"),
                queue_reads({}, httpx.QueryParams(f"cursor={next_cursor[1]}")["cursor"]),
            ),
        }
        for name, (render, raw) in cases.items():
            say(f"timing {name} ...")
            await render()  # warm: templates compiled, connections open
            rendered = await timed(render, rounds)
            reads = await timed(raw, rounds)
            results[name] = {
                "server_p50_ms": percentile(rendered, 0.5),
                "server_p95_ms": percentile(rendered, 0.95),
                "read_model_p50_ms": percentile(reads, 0.5),
                "read_model_p95_ms": percentile(reads, 0.95),
                "ratio_p95": round(percentile(rendered, 0.95) / max(percentile(reads, 0.95), 0.1),
                                   1),
            }
        results["board_html_bytes"] = len(first.encode())
        results["board_html_gzip_bytes"] = len(gzip.compress(first.encode()))
    stop.set()
    await projector
    await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 jobs and fewer samples")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = start_server(Path(data), persist=False)
        try:
            results = asyncio.run(bench(args, server.url))
        finally:
            server.stop()
    python = platform.python_version()
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {python}"
    if args.json:
        print(json.dumps(results))
        return
    width = max(len(name) for name in results)
    for name, value in results.items():
        if isinstance(value, dict):
            goal = "ok" if value["server_p95_ms"] < 300 else "OVER the 300 ms goal"
            print(
                f"{name:>{width}}: server p50 {value['server_p50_ms']} ms, p95 "
                f"{value['server_p95_ms']} ms | read model p50 {value['read_model_p50_ms']} ms, "
                f"p95 {value['read_model_p95_ms']} ms | ratio {value['ratio_p95']}x ({goal})"
            )
        else:
            print(f"{name:>{width}}: {value}")


if __name__ == "__main__":
    main()
