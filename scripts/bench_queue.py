"""Benchmark the queue API over HTTP: job submission latency and filtered list pages over
10,000 jobs, against `cairn api` and `cairn projector` processes on one embedded server.

    python scripts/bench_queue.py [--quick] [--json]

Ceilings measured in the same run: the HTTP round trip of `GET /healthz` (no Redis at all) and
the raw redis-py reads a list page needs (ZRANGE BYLEX + HMGET of one page).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from cairn.projections import layout
from cairn.projections.generations import current_space
from cairn.projections.jobs.queue import NAME as QUEUE
from cairn.streams.connection import connect
from cairn.streams.keys import Keys
from cairn.streams.server import free_port, start_server

TOKEN = "bench-" + secrets.token_urlsafe(32)
RUNTIMES = ["codex", "claude", "gemini"]
QUERIES: list[dict[str, str]] = [
    {},
    {"status": "queued", "runtime": "claude"},
    {"type": "codex_exec"},
    {"runtime": "gemini", "publishMode": "branch"},
    {"project": "p2", "status": "queued"},
    {"repository": "acme/repo7"},
    {"source": "queue", "skill": "auto", "runtime": "codex"},
]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def job_body(i: int, rng: random.Random) -> dict[str, Any]:
    repo = f"acme/repo{rng.randrange(20)}"
    runtime = rng.choice(RUNTIMES)
    if rng.random() < 0.2:
        payload = {"instruction": f"legacy {i}", "inputs": {"repo": repo}, "publishMode": "branch"}
        return {"type": "codex_exec", "payload": payload, "project": f"p{rng.randrange(4)}"}
    publish = rng.choice(["pr", "branch", "none"])
    payload = {"repository": repo, "targetRuntime": runtime,
               "task": {"instructions": f"job {i}", "publish": {"mode": publish}}}  # fmt: skip
    return {"type": "task", "payload": payload, "priority": rng.randrange(4),
            "project": f"p{rng.randrange(4)}"}  # fmt: skip


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)


async def timed(call: Any) -> float:
    started = time.perf_counter()
    response = await call
    assert response.status_code < 300, response.text
    return (time.perf_counter() - started) * 1000


async def bench(args: argparse.Namespace, url: str, base: str) -> dict[str, Any]:
    rng = random.Random(1)
    n_jobs = 10_000
    results: dict[str, Any] = {"jobs": n_jobs}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as http:
        say("HTTP ceiling (GET /healthz) ...")
        noop = [await timed(http.get("/healthz")) for _ in range(300)]
        results["http_noop_p50_ms"], results["http_noop_p95_ms"] = (
            percentile(noop, 0.5), percentile(noop, 0.95))  # fmt: skip

        say(f"submitting {n_jobs} jobs ...")
        bodies = [job_body(i, rng) for i in range(n_jobs)]
        sample = 300 if args.quick else 1000
        latencies = [await timed(http.post("/api/queue/jobs", json=b)) for b in bodies[:sample]]
        results["submit_p50_ms"] = percentile(latencies, 0.5)
        results["submit_p95_ms"] = percentile(latencies, 0.95)
        rest = iter(bodies[sample:])
        started = time.perf_counter()

        async def lane() -> None:
            for body in rest:
                response = await http.post("/api/queue/jobs", json=body)
                assert response.status_code < 300, response.text

        await asyncio.gather(*(lane() for _ in range(16)))
        results["submit_per_s_16_concurrent"] = round(
            (n_jobs - sample) / (time.perf_counter() - started)
        )

        say("filtered list pages ...")
        rounds = 30 if args.quick else 100
        pages: list[float] = []
        per_query: dict[str, float] = {}
        for query in QUERIES:
            samples = [
                await timed(http.get("/api/queue/jobs", params={**query, "limit": 50}))
                for _ in range(rounds)
            ]
            pages += samples
            per_query["&".join(f"{k}={v}" for k, v in query.items()) or "(none)"] = percentile(
                samples, 0.95
            )
        listed = (await http.get("/api/queue/jobs", params={"limit": 1})).json()
        assert sum(listed["counts"].values()) == n_jobs, listed["counts"]
        results["list_page_p50_ms"] = percentile(pages, 0.5)
        results["list_page_p95_ms"] = percentile(pages, 0.95)
        results["list_page_p95_ms_by_filter"] = per_query

    say("raw Redis ceiling for a page ...")
    client = connect(url)
    keys = Keys("cairn", 16)
    raw: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        space = await current_space(client, keys, QUEUE, 3)
        members = await client.zrange(layout.all_jobs(space), "+", "-", desc=True, bylex=True,
                                      offset=0, num=50)  # fmt: skip
        await client.hmget(layout.jobs(space), [m.decode().rsplit("|", 1)[1] for m in members])
        raw.append((time.perf_counter() - started) * 1000)
    await client.aclose()
    results["raw_redis_page_p50_ms"] = percentile(raw, 0.5)
    results["raw_redis_page_p95_ms"] = percentile(raw, 0.95)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples, about a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = start_server(Path(data), persist=True)
        port = free_port()
        env = {**os.environ, "CAIRN_REDIS_URL": server.url, "CAIRN_ADMIN_TOKEN": TOKEN,
               "CAIRN_PORT": str(port)}  # fmt: skip
        children = [
            subprocess.Popen([sys.executable, "-m", "cairn.api.cli", role], env=env)
            for role in ("api", "projector")
        ]
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    if httpx.get(base + "/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            results = asyncio.run(bench(args, server.url, base))
        finally:
            for child in children:
                child.terminate()
                child.wait(10)
            server.stop()
    python = platform.python_version()
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {python}"
    results["quick"] = args.quick
    if args.json:
        print(json.dumps(results))
    else:
        for name, value in results.items():
            print(f"{name:>30}: {value}")


if __name__ == "__main__":
    main()
