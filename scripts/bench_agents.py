"""Benchmark what Cairn adds around a real agent CLI: a real Cairn (projector, scheduler, one
worker) runs jobs with the pinned claude, codex and gemini (tests/agents, installed by
./scripts/test) against the tests' scripted model server, on a local bare repository whose
mirror is warm; beside each job, in the same run, the same CLI is run by hand (its command line,
HOME and environment as a step's) on the same script.

    python scripts/bench_agents.py [--jobs 20] [--runtimes claude,codex,gemini] [--json]

Figures per runtime, over the jobs (p50 / p95):
- by_hand_s: the CLI run by hand, start to exit: the floor;
- job_wall_s: a job from submitted to succeeded (dispatch, claim, prepare, the step, commit and
  push of the branch, the outcome);
- overhead_s: job wall minus the by-hand median: what Cairn adds. Goal: p50 at most 0.5 s;
- around_step_s: job wall minus the step's own duration as the worker timed it (the same
  overhead with the CLI's own variance taken out);
- steer_s (with --steer N): an operator's message sent to a running agent (busy in a `sleep`
  the model asked for) until the scripted server gets the request that carries it: the turn
  stopped, the session resumed by a new CLI process. Goal: p50 at most 2 s. Beside it,
  first_request_s: the same CLI run by hand, from its start to its first request (the part of
  steer_s that is the CLI's own start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' model server

from cairn.commands.jobs.job import JobRequest, add_operator_message, load_job, submit_job
from cairn.commands.settings import ExecutionSettings, Settings
from cairn.streams.connection import connect
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.server import start_server
from cairn.streams.store import EventStore
from tests.agents.clis import MODELS, require_clis, run_like_a_step, template, vendor_env
from tests.agents.model_server import ModelServer, command, text, write
from tests.worker.conftest import make_remote

GOAL_P50_S = 0.5
GOAL_STEER_S = 2.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 3)


def seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def turns(runtime: str, i: int) -> list[Any]:
    return [write(f"bench-{i}.txt", f"{runtime} {i}\n"), text("Done.")]


async def run(folder: Path, runtimes: list[str], jobs: int, steer: int) -> dict[str, Any]:
    bin_dir = require_clis()
    model = ModelServer().start()
    remote = make_remote(folder / "git", "bench/repo")
    server = start_server(folder / "redis", persist=False)
    home = folder / "worker-home"
    home.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")},
           "CAIRN_REDIS_URL": server.url, "CAIRN_PREFIX": "bench", "CAIRN_PARTITIONS": "4",
           "CAIRN_DATA_DIR": str(folder / "data"), "CAIRN_ALLOW_LOCAL_REPOSITORIES": "true",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(home)}  # fmt: skip
    for runtime in runtimes:
        env |= vendor_env(runtime, model, home)
        env[f"CAIRN_{runtime.upper()}_HOME_TEMPLATE"] = str(template(folder, runtime))
    capabilities = ",".join([*runtimes, "git"])
    argvs = [["projector"], ["scheduler"], ["worker", "--id", "bench", "--capabilities",
                                            capabilities]]  # fmt: skip
    processes = [subprocess.Popen([sys.executable, "-m", "cairn.api.cli", *argv], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for argv in argvs]  # fmt: skip
    client = connect(server.url)
    store = EventStore(client, Keys("bench", 4))
    contract = Settings(execution=ExecutionSettings(allow_local_repositories=True)).contract()
    figures: dict[str, Any] = {}
    try:
        for runtime in runtimes:
            walls, steps, hands = [], [], []
            for i in range(jobs + 1):  # the first warms the mirror and the CLI's caches
                marker = model.script(f"SCRIPT-bench-{runtime}-{i}", turns(runtime, i))
                prompt = f"Add bench-{i}.txt. {marker}"
                by_hand = model.script(f"SCRIPT-hand-{runtime}-{i}", turns(runtime, i))
                hand = run_like_a_step(runtime, f"Add bench-{i}.txt. {by_hand}", model,
                                       folder / "hand" / f"{runtime}-{i}", env={"HOME": str(home)})
                if hand.exit_status != 0:
                    raise RuntimeError(f"{runtime} by hand exited {hand.exit_status}: "
                                       f"{hand.output[-800:]}")  # fmt: skip
                payload = {"repository": str(remote.bare), "targetRuntime": runtime,
                           "task": {"instructions": prompt, "runtime": {"model": MODELS[runtime]},
                                    "publish": {"mode": "branch"}}}  # fmt: skip
                job_id = (await submit_job(store, JobRequest("task", payload), contract,
                                           actor="bench")).id  # fmt: skip
                while (job := await load_job(store, job_id)).status not in {
                        "succeeded", "failed", "dead_letter"}:  # fmt: skip
                    await asyncio.sleep(0.02)
                if job.status != "succeeded":
                    raise RuntimeError(f"{runtime} job {i} ended {job.status}: {job.outcome}")
                if i == 0:
                    continue
                events = await store.read_aggregate(job_id)
                walls.append(wall(events))
                steps.append(sum(s["duration_ms"] for s in job.steps) / 1000)
                hands.append(hand.seconds)
                say(f"bench: {runtime} {i}/{jobs}: job {walls[-1]:.2f} s, by hand "
                    f"{hands[-1]:.2f} s")  # fmt: skip
            floor = statistics.median(hands)
            overheads = [w - floor for w in walls]
            around = [w - s for w, s in zip(walls, steps, strict=True)]
            figures[runtime] = {
                "by_hand_s": [percentile(hands, 0.5), percentile(hands, 0.95)],
                "job_wall_s": [percentile(walls, 0.5), percentile(walls, 0.95)],
                "overhead_s": [percentile(overheads, 0.5), percentile(overheads, 0.95)],
                "around_step_s": [percentile(around, 0.5), percentile(around, 0.95)],
            }
            if steer:
                figures[runtime] |= await steering(store, model, remote.bare, folder, home,
                                                   runtime, contract, steer)  # fmt: skip
    finally:
        await client.aclose()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        server.stop()
        model.stop()
    return figures


async def steering(store: EventStore, model: ModelServer, bare: Path, folder: Path, home: Path,
                   runtime: str, contract: Any, count: int) -> dict[str, Any]:  # fmt: skip
    """Messages to running agents, each until the model got it; and the CLI's own start."""
    steers, starts = [], []
    for i in range(count):
        busy = model.script(f"SCRIPT-busy-{runtime}-{i}", [command("sleep 60"), text("Slept.")])
        heard = model.script(f"SCRIPT-heard-{runtime}-{i}", turns(runtime, 100 + i))
        payload = {"repository": str(bare), "targetRuntime": runtime,
                   "task": {"instructions": f"Wait. {busy}", "runtime": {"model": MODELS[runtime]},
                            "publish": {"mode": "none"}}}  # fmt: skip
        job_id = (await submit_job(store, JobRequest("task", payload), contract,
                                   actor="bench")).id  # fmt: skip
        while not model.seen(busy):
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.5)  # well into its sleep
        sent = time.time()
        await add_operator_message(store, job_id, f"Add the file instead. {heard}", actor="bench")
        while not model.seen(heard):
            await asyncio.sleep(0.01)
        steers.append(model.seen(heard)[0].at - sent)
        while (await load_job(store, job_id)).status not in {"succeeded", "failed",
                                                              "dead_letter"}:  # fmt: skip
            await asyncio.sleep(0.05)
        by_hand = model.script(f"SCRIPT-start-{runtime}-{i}", [text("Hi.")])
        started = time.time()
        run_like_a_step(runtime, f"Say hi. {by_hand}", model, folder / "start" / f"{runtime}-{i}",
                        env={"HOME": str(home)})  # fmt: skip
        starts.append(model.seen(by_hand)[0].at - started)
        say(f"bench: {runtime} steer {i + 1}/{count}: {steers[-1]:.2f} s (its start by hand "
            f"{starts[-1]:.2f} s)")  # fmt: skip
    return {"steer_s": [percentile(steers, 0.5), percentile(steers, 0.95)],
            "first_request_s": [percentile(starts, 0.5), percentile(starts, 0.95)]}


def wall(events: list[Envelope]) -> float:
    submitted = next(e for e in events if e.type == "job.submitted")
    done = next(e for e in events if e.type == "job.succeeded")
    return seconds(done.ts) - seconds(submitted.ts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs per runtime (after a warm-up)")
    parser.add_argument("--runtimes", default="claude,codex,gemini", help="comma-separated")
    parser.add_argument("--steer", type=int, default=0,
                        help="messages to running agents per runtime (0: none)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-agents-") as tmp:
        figures = asyncio.run(run(Path(tmp), runtimes, max(2, args.jobs), args.steer))
    figures["goal_overhead_p50_s"] = GOAL_P50_S
    figures["goal_steer_p50_s"] = GOAL_STEER_S
    figures["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for runtime in runtimes:
            for name, (p50, p95) in figures[runtime].items():
                print(f"{runtime:>7} {name:>14}: p50 {p50:.3f} s, p95 {p95:.3f} s")
        print(f"goal: overhead p50 at most {GOAL_P50_S} s"
              + (f"; steer p50 at most {GOAL_STEER_S} s" if args.steer else ""))
    met = all(figures[r]["overhead_s"][0] <= GOAL_P50_S for r in runtimes)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
