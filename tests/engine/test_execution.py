"""A job really works on a repository: real git against local bare remotes, real worker,
scheduler and projector processes; only the agent CLIs and `gh` are fakes (scripts on PATH)."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from cairn.commands.jobs.job import (
    add_operator_message,
    cancel_job,
    load_job,
    pause_job,
    resume_job,
)
from cairn.commands.settings import Settings
from cairn.domain.jobs.job import Job
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.engine.conftest import Engine, log_events, submit, wait_for
from tests.worker.conftest import FAKE_GH, PR_URL, Seeded, run_git

SECRET = "s3cr3t-Value-0123456789-abcdefghijkl"
GHP = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0" * 2


def editing_claude(folder: Path, *, fail_step_2: bool = False) -> str:
    """A stand-in for claude (its environment is Cairn's minimal one, so its settings are
    baked in): records its prompt, prints a secret three ways, edits the checkout, sleeps
    while a flag file exists, reports usage like claude's stream-json, exits as told."""
    encoded = base64.b64encode(SECRET.encode()).decode()
    fail = 'case "$last" in *"Step 2/3"*) exit 3;; esac' if fail_step_2 else ""
    return f"""#!/bin/sh
[ "$1" = "--version" ] && {{ echo "fake 0.0.0"; exit 0; }}
for last; do :; done
printf '%s\\n=====\\n' "$last" >> "{folder}/prompts.txt"
echo "working on it"
echo "a secret: {SECRET} and {encoded} and {GHP}"
{fail}
echo "line by claude" >> README.md
while [ -f "{folder}/hold" ]; do sleep 0.2; done
echo '{{"type":"result","usage":{{"input_tokens":10,"output_tokens":5}},"total_cost_usd":0.01}}'
exit 0
"""


def job_payload(remote: Seeded, *, mode: str = "branch", steps: int = 0,
                instructions: str = "Add a line to the readme") -> dict[str, Any]:  # fmt: skip
    task: dict[str, Any] = {"instructions": instructions, "publish": {"mode": mode}}
    if steps:
        task["steps"] = [{"title": f"Part {i}", "instructions": f"do part {i}"}
                         for i in range(1, steps + 1)]  # fmt: skip
    return {"repository": str(remote.bare), "targetRuntime": "claude", "task": task}


@pytest.fixture
def git_engine(engine: Engine, tmp_path: Path) -> Engine:
    """The engine with an editing fake claude, a fake gh, and local repositories allowed."""
    claude = engine.tmp / "bin" / "claude"
    claude.write_text(editing_claude(engine.shared))
    gh_calls = tmp_path / "gh-calls.jsonl"
    (engine.tmp / "bin" / "gh").write_text(FAKE_GH.format(
        python=sys.executable, record=str(gh_calls), control=str(tmp_path / "gh-control.json"),
        url=PR_URL))  # fmt: skip
    (engine.tmp / "bin" / "gh").chmod(0o755)
    engine.env.update({
        "CAIRN_ALLOW_LOCAL_REPOSITORIES": "true",
        "CAIRN_GIT_AUTHOR_NAME": "Cairn Test", "CAIRN_GIT_AUTHOR_EMAIL": "cairn@test",
        "MY_SERVICE_TOKEN": SECRET,
    })  # fmt: skip
    engine.projector()
    engine.scheduler()
    return engine


async def finished(store: EventStore, job_id: str, timeout: float = 60) -> Job:
    async def done() -> bool:
        return (await load_job(store, job_id)).status in {
            "succeeded", "failed", "dead_letter", "cancelled"}  # fmt: skip

    await wait_for(done, timeout=timeout, what=f"job {job_id} finished")
    return await load_job(store, job_id)


def types_of(events: list[Any], job_id: str) -> list[str]:
    return [e.type for e in events if e.agg == job_id]


async def test_a_job_edits_commits_and_pushes_its_branch(
    git_engine: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded
) -> None:
    git_engine.worker("w", "claude,git,gh")
    job_id = await submit(store, settings, "task", job_payload(remote))
    job = await finished(store, job_id)
    assert job.status == "succeeded", job.outcome
    assert job.publish and job.publish["outcome"] == "PUBLISHED_BRANCH"
    branch = str(job.publish["branch"])
    assert branch.startswith("cairn/") and branch in remote.branches()
    log = run_git("--git-dir", str(remote.bare), "log", "--format=%an <%ae>%n%B%n--", branch,
                  "-1")  # fmt: skip
    assert "Cairn Test <cairn@test>" in log and f"Cairn-Job: {job_id}" in log
    assert run_git("--git-dir", str(remote.bare), "rev-list", "--count",
                   f"main..{branch}").strip() == "1"  # fmt: skip
    shown = run_git("--git-dir", str(remote.bare), "show", f"{branch}:README.md")
    assert "line by claude" in shown
    events = await log_events(store, keys)
    ours = [e for e in events if e.agg == job_id]
    kinds = [e.type for e in ours]
    assert kinds.index("job.branch_resolved") < kinds.index("job.step_started")
    assert kinds.index("job.step_finished") < kinds.index("job.published")
    stages = [(e.type, e.data.get("stage")) for e in ours if e.type.startswith("job.stage_")]
    assert stages == [(t, s) for s in ("prepare", "execute", "publish")
                      for t in ("job.stage_started", "job.stage_finished")]  # fmt: skip
    [step] = job.steps
    assert step["status"] == "succeeded" and step["files"] == 1 and step["insertions"] == 1
    assert (step.get("usage") or {}).get("tokens_out") == 5
    names = {a["path"].split("/", 1)[1] for a in job.artifacts}
    assert {"task_context.json", "logs/steps/step-1.log", "patches/steps/step-1.patch",
            "changes.patch", "publish_result.json", "run_summary.json"} <= names  # fmt: skip
    store_root = Path(git_engine.env["CAIRN_DATA_DIR"]) / "artifacts" / job_id
    import hashlib

    for artifact in job.artifacts:
        data = (store_root / artifact["path"]).read_bytes()
        assert artifact["sha256"] == hashlib.sha256(data).hexdigest()
        assert artifact["size"] == len(data)
    # The workspace is gone after the run.
    assert not (Path(git_engine.env["CAIRN_DATA_DIR"]) / "work" / job_id).exists()


async def test_an_agent_that_points_origin_elsewhere_publishes_nothing(
    git_engine: Engine, store: EventStore, settings: Settings, tmp_path: Path, remote: Seeded
) -> None:
    # The agent's checkout is its to change, origin included: publishing checks origin is
    # still the job's repository before it pushes.
    elsewhere = tmp_path / "elsewhere.git"
    run_git("init", "--bare", "--quiet", str(elsewhere))
    claude = git_engine.tmp / "bin" / "claude"
    claude.write_text(f"""#!/bin/sh
echo "line by claude" >> README.md
git remote set-url origin "{elsewhere}"
exit 0
""")
    git_engine.worker("w", "claude,git,gh")
    job_id = await submit(store, settings, "task", job_payload(remote))
    job = await finished(store, job_id)
    assert job.status == "failed", job.outcome
    assert job.publish and "origin no longer points" in job.publish["detail"]["reason"]
    assert remote.branches() == ["main"]
    assert run_git("--git-dir", str(elsewhere), "branch", "--list").strip() == ""


async def test_pr_mode_opens_a_pr_with_the_right_base_head_title_and_body(
    git_engine: Engine, store: EventStore, settings: Settings, tmp_path: Path, remote: Seeded
) -> None:
    git_engine.worker("w", "claude,git,gh")
    payload = job_payload(remote, mode="pr", instructions="Fix the greeting. Then more.")
    payload["task"]["publish"]["verificationSkipReason"] = {
        "category": "docs_only", "reason": "a readme line"}  # fmt: skip
    job_id = await submit(store, settings, "task", payload)
    job = await finished(store, job_id)
    assert job.status == "succeeded", job.outcome
    assert job.publish is not None
    assert (job.publish["outcome"], job.publish["pr_url"]) == ("PUBLISHED_PR", PR_URL)
    import json

    [call] = [json.loads(line) for line in (tmp_path / "gh-calls.jsonl").read_text().splitlines()]
    argv = call["argv"]
    assert argv[:2] == ["pr", "create"]
    assert argv[argv.index("--base") + 1] == "main"
    assert argv[argv.index("--head") + 1] == job.publish["branch"]
    assert argv[argv.index("--title") + 1] == "Fix the greeting"
    assert job_id in argv[argv.index("--body") + 1]


async def test_step_two_of_three_fails_so_step_three_never_runs_and_it_is_retried(
    git_engine: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded,
    tmp_path: Path,
) -> None:  # fmt: skip
    failing = editing_claude(git_engine.shared, fail_step_2=True)
    (git_engine.tmp / "bin" / "claude").write_text(failing)
    git_engine.worker("w", "claude,git,gh")
    job_id = await submit(store, settings, "task", job_payload(remote, steps=3), max_attempts=2)
    job = await finished(store, job_id, timeout=90)
    assert job.status == "dead_letter", job.status
    assert job.outcome and job.outcome["stage"] == "execute"
    assert job.outcome["error"]["index"] == 2 and job.outcome["error"]["exit_status"] == 3
    events = [e for e in await log_events(store, keys) if e.agg == job_id]
    claims = [i for i, e in enumerate(events) if e.type == "job.claimed"]
    assert len(claims) == 2  # retried per the policy
    for start, end in zip(claims, [*claims[1:], len(events)], strict=True):
        started = [e.data["index"] for e in events[start:end] if e.type == "job.step_started"]
        assert started == [1, 2]
    assert "job.published" not in types_of(events, job_id)


def _group_alive(marker: str) -> bool:
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return bool(found.stdout.strip())


async def test_cancel_reaches_a_long_step_and_leaves_no_process(
    git_engine: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded
) -> None:
    marker = "317.25"
    script = git_engine.tmp / "bin" / "claude"
    script.write_text(f"#!/bin/sh\necho started\nsleep {marker} &\nsleep {marker}\n")
    git_engine.worker("w", "claude,git,gh")
    job_id = await submit(store, settings, "task", job_payload(remote))

    async def step_running() -> bool:
        return any(e.type == "job.step_started" for e in await log_events(store, keys)
                   if e.agg == job_id) and _group_alive(marker)  # fmt: skip

    await wait_for(step_running, timeout=60, what="the step running")
    asked = time.monotonic()
    await cancel_job(store, job_id, actor="test")
    job = await finished(store, job_id, timeout=30)
    assert job.status == "cancelled"
    assert time.monotonic() - asked < 10  # the grace is 5 s
    assert not _group_alive(marker)
    stage = next(s for s in job.stages if s["stage"] == "execute")
    assert stage["status"] == "cancelled" and stage["detail"]["index"] == 1


async def test_pause_holds_between_steps_and_a_message_reaches_the_next_prompt(
    git_engine: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded,
    tmp_path: Path,
) -> None:  # fmt: skip
    (git_engine.shared / "hold").touch()
    git_engine.worker("w", "claude,git,gh")
    job_id = await submit(store, settings, "task", job_payload(remote, steps=2))

    async def step(index: int) -> bool:
        return any(e.type == "job.step_started" and e.data["index"] == index
                   for e in await log_events(store, keys) if e.agg == job_id)  # fmt: skip

    await wait_for(lambda: step(1), timeout=60, what="step 1 started")
    await pause_job(store, job_id, actor="test", reason="look first")
    await add_operator_message(store, job_id, "Mind the tabs, please", actor="test")
    (git_engine.shared / "hold").unlink()  # step 1 ends; step 2 must wait for the resume
    await asyncio.sleep(3)
    assert not await step(2)
    await resume_job(store, job_id, actor="test")
    job = await finished(store, job_id)
    assert job.status == "succeeded", job.outcome
    prompts = (git_engine.shared / "prompts.txt").read_text().split("=====\n")
    assert "Mind the tabs, please" not in prompts[0] and "Mind the tabs, please" in prompts[1]


async def test_secrets_printed_by_the_agent_are_redacted_everywhere(
    git_engine: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded
) -> None:
    git_engine.worker("w", "claude,git,gh")
    job_id = await submit(store, settings, "task", job_payload(remote))
    job = await finished(store, job_id)
    assert job.status == "succeeded", job.outcome
    forms = [SECRET, base64.b64encode(SECRET.encode()).decode(), GHP]
    everything = "\n".join(str(e) for e in await log_events(store, keys))
    output: Any = await store.redis.xrange(keys.output(job_id))
    everything += "\n".join(str(fields) for _, fields in output)
    assert "[REDACTED]" in str(output)
    for root, _, files in os.walk(git_engine.env["CAIRN_DATA_DIR"]):
        for name in files:
            path = Path(root, name)
            if path.suffix in {".aof", ".rdb"} or "mirrors" in path.parts or path.is_symlink():
                continue
            # The worker removes the attempt's workspace once the job is finished: a file may
            # go between the walk and the read.
            with suppress(FileNotFoundError):
                everything += path.read_text(errors="replace")
    everything += "\n".join(git_engine.output(name) for name in git_engine.processes)
    for form in forms:
        assert form not in everything, form


async def test_a_worker_killed_mid_step_leaves_one_branch_with_one_commit(
    git_engine: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded,
    tmp_path: Path,
) -> None:  # fmt: skip
    (git_engine.shared / "hold").touch()
    doomed = git_engine.worker("doomed", "claude,git,gh", lease=2)
    job_id = await submit(store, settings, "task", job_payload(remote))

    async def step_running() -> bool:
        return any(e.type == "job.step_started" for e in await log_events(store, keys)
                   if e.agg == job_id)  # fmt: skip

    await wait_for(step_running, timeout=60, what="the step running")
    doomed.kill()
    doomed.wait()
    (git_engine.shared / "hold").unlink()
    git_engine.worker("rescuer", "claude,git,gh", lease=2)
    job = await finished(store, job_id, timeout=90)
    assert job.status == "succeeded" and job.attempt == 2, job.outcome
    ours = [b for b in remote.branches() if b != "main"]
    assert ours == [job.publish["branch"]] if job.publish else False
    assert run_git("--git-dir", str(remote.bare), "rev-list", "--count",
                   f"main..{ours[0]}").strip() == "1"  # fmt: skip
