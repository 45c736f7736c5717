"""Benchmark the execution path: a real Cairn (projector, scheduler, one worker with the
`shell` runtime) running jobs on a local bare repository of 10,000 commits.

    python scripts/bench_execution.py [--commits 10000] [--jobs 10] [--json]

Figures:
- prepare_first_s, prepare_second_s: the prepare stage (mirror, checkout, branches, context)
  of the first job on the repository (the mirror is cloned) and of the second (it is only
  fetched), from the stage events; goal: the second under a third of the first.
- job_overhead_s (p50, p95): a job whose one step does nothing (`true`, publish mode branch,
  so nothing to push), from `job.claimed` to `job.succeeded`, minus the step's own duration:
  what the three stages cost around an agent.
- plain_clone_s, plain_push_s: beside them, in the same run, `git clone` of the same repository
  and a `git push` of one new commit from that clone: the floor a job's git work stands on.
- sandbox_cost_ms (p50): what the agent sandbox (bubblewrap, worker/sandbox.py) adds to a step:
  the `true` step's duration and the time from the stage's start to the step's (where the
  workspace is handed to the sandbox's user), with the sandbox, minus the same without it
  (CAIRN_SANDBOX=off), both measured in this run; goal: under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from cairn.commands.jobs.job import JobRequest, load_job, submit_job
from cairn.commands.settings import ExecutionSettings, Settings
from cairn.streams.connection import connect
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.server import start_server
from cairn.streams.store import EventStore

GIT_ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": os.devnull}  # fmt: skip


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def git(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, input=stdin, check=True,
                          capture_output=True)  # fmt: skip
    return done.stdout.decode()


def make_repository(root: Path, commits: int) -> Path:
    """A bare repository whose main has `commits` commits (git fast-import: seconds)."""
    bare = root / "big.git"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    stream = bytearray()
    when = 1_700_000_000
    for i in range(1, commits + 1):
        body = f"line {i}\n" * 20
        path = f"src/module_{i % 200}.py"
        message = f"commit {i}\n"
        stream += (f"commit refs/heads/main\nmark :{i}\n"
                   f"committer Bench <bench@example.com> {when + i} +0000\n"
                   f"data {len(message)}\n{message}").encode()  # fmt: skip
        if i > 1:
            stream += f"from :{i - 1}\n".encode()
        stream += f"M 644 inline {path}\ndata {len(body)}\n{body}\n".encode()
    git("fast-import", "--quiet", cwd=bare, stdin=bytes(stream))
    git("gc", "-q", "--aggressive", cwd=bare)
    return bare


def plain_git(bare: Path, work: Path) -> tuple[float, float]:
    """`git clone` of the repository (by file://, so packs are sent as over a network), then
    a push of one new commit: their seconds."""
    started = time.monotonic()
    git("clone", "-q", bare.as_uri(), str(work))
    cloned = time.monotonic() - started
    (work / "PLAIN.md").write_text("plain\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "plain", cwd=work)
    started = time.monotonic()
    git("push", "-q", "origin", "HEAD:refs/heads/plain-bench", cwd=work)
    return cloned, time.monotonic() - started


def parse_ts(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def stage_seconds(events: list[Envelope], stage: str) -> float:
    start = next(e for e in events if e.type == "job.stage_started" and e.data["stage"] == stage)
    end = next(e for e in events if e.type == "job.stage_finished" and e.data["stage"] == stage)
    return parse_ts(end.ts) - parse_ts(start.ts)


def overhead_seconds(events: list[Envelope]) -> float:
    claimed = next(e for e in events if e.type == "job.claimed")
    done = next(e for e in events if e.type == "job.succeeded")
    step = sum(int(e.data.get("duration_ms", 0)) for e in events if e.type == "job.step_finished")
    return parse_ts(done.ts) - parse_ts(claimed.ts) - step / 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 3)


def step_cost_ms(events: list[Envelope]) -> float:
    """From the execute stage's start to its step's end: the step and what readies it."""
    start = next(e for e in events
                 if e.type == "job.stage_started" and e.data["stage"] == "execute")  # fmt: skip
    end = next(e for e in events if e.type == "job.step_finished")
    return (parse_ts(end.ts) - parse_ts(start.ts)) * 1000


async def run_jobs(folder: Path, bare: Path, jobs: int, sandbox: str) -> dict[str, Any]:
    server = start_server(folder / f"redis-{sandbox}", persist=False)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")},
           "CAIRN_REDIS_URL": server.url, "CAIRN_PREFIX": "bench", "CAIRN_PARTITIONS": "4",
           "CAIRN_DATA_DIR": str(folder / f"data-{sandbox}"), "CAIRN_SANDBOX": sandbox,
           "CAIRN_ALLOW_LOCAL_REPOSITORIES": "true"}  # fmt: skip
    argvs = [["projector"], ["scheduler"],
             ["worker", "--id", "bench", "--capabilities", "shell,git"]]  # fmt: skip
    processes = [subprocess.Popen([sys.executable, "-m", "cairn.api.cli", *argv], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for argv in argvs]  # fmt: skip
    client = connect(server.url)
    store = EventStore(client, Keys("bench", 4))
    settings = Settings(prefix="bench", partitions=4,
                        execution=ExecutionSettings(allow_local_repositories=True))
    # file:// makes git transfer packs as it would over a network (a plain path would let
    # it hard-link the objects, which no remote allows).
    payload = {"repository": bare.as_uri(), "targetRuntime": "shell",
               "task": {"instructions": "true", "publish": {"mode": "branch"}}}  # fmt: skip
    try:
        results: list[list[Envelope]] = []
        for i in range(jobs):
            job_id = (await submit_job(store, JobRequest("task", payload), settings.contract(),
                                       actor="bench")).id  # fmt: skip
            while (job := await load_job(store, job_id)).status not in {"succeeded", "failed",
                                                                        "dead_letter"}:  # fmt: skip
                await asyncio.sleep(0.05)
            if job.status != "succeeded":
                raise RuntimeError(f"job {i} ended {job.status}: {job.outcome}")
            results.append(await store.read_aggregate(job_id))
            say(f"bench: job {i + 1}/{jobs} done (sandbox {sandbox})")
    finally:
        await client.aclose()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        server.stop()
    overheads = [overhead_seconds(events) for events in results[1:]]
    return {
        "step_ms": [step_cost_ms(events) for events in results[1:]],
        "prepare_first_s": round(stage_seconds(results[0], "prepare"), 3),
        "prepare_second_s": round(stage_seconds(results[1], "prepare"), 3),
        "job_overhead_p50_s": percentile(overheads, 0.5),
        "job_overhead_p95_s": percentile(overheads, 0.95),
        "publish_outcome": (await_outcome(results[-1])),
    }


def await_outcome(events: list[Envelope]) -> str:
    published = [e for e in events if e.type == "job.published"]
    return str(published[-1].data["outcome"]) if published else "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=10_000, help="commits in the repository")
    parser.add_argument("--jobs", type=int, default=10, help="jobs to run (at least 2)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cairn-bench-exec-"))
    say(f"bench: making a repository of {args.commits} commits")
    bare = make_repository(folder, args.commits)
    size = sum(p.stat().st_size for p in bare.rglob("*") if p.is_file())
    clone_s, push_s = plain_git(bare, folder / "plain")
    plain = asyncio.run(run_jobs(folder, bare, max(2, args.jobs), "off"))
    figures = asyncio.run(run_jobs(folder, bare, max(2, args.jobs), "bubblewrap"))
    figures["unsandboxed_step_ms_p50"] = percentile(plain.pop("step_ms"), 0.5)
    figures["sandboxed_step_ms_p50"] = percentile(figures.pop("step_ms"), 0.5)
    figures["sandbox_cost_ms_p50"] = round(
        figures["sandboxed_step_ms_p50"] - figures["unsandboxed_step_ms_p50"], 1)
    figures["unsandboxed_job_overhead_p50_s"] = plain["job_overhead_p50_s"]
    figures |= {"commits": args.commits, "repository_bytes": size,
                "plain_clone_s": round(clone_s, 3), "plain_push_s": round(push_s, 3)}  # fmt: skip
    figures["second_over_first"] = round(figures["prepare_second_s"] / figures["prepare_first_s"],
                                         3)  # fmt: skip
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:>22}: {value}")
    return 0 if figures["second_over_first"] < 1 / 3 and figures["sandbox_cost_ms_p50"] < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
