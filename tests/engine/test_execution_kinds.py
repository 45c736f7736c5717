"""The other ways a job runs: a board task through its pipeline (the task follows its step), a
shell quick action whose output is read back, a container job through a fake `docker`, a
manifest job over a local folder, proposals an agent writes, and a plan the agent planner writes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cairn.commands.jobs.job import (
    JobRequest,
    load_job,
    pause_job,
    resume_job,
    submit_quick_run,
)
from cairn.commands.planning.import_plans import request_agent_plan
from cairn.commands.planning.imports import load_import
from cairn.commands.settings import Settings
from cairn.commands.tasks.task import create_task, load_task
from cairn.domain.planning.preview import ImportRequest
from cairn.domain.tasks.spec import TaskSpec
from cairn.projections.jobs.queue import Queue
from cairn.streams.keys import Keys
from cairn.streams.output import OutputStream
from cairn.streams.store import EventStore
from tests.engine.conftest import Engine, log_events, submit, wait_for
from tests.engine.test_execution import finished
from tests.worker.conftest import Seeded, run_git


@pytest.fixture
def running(engine: Engine) -> Engine:
    engine.projector()
    engine.scheduler()
    return engine


def write_script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


async def test_a_board_task_runs_its_pipeline_and_the_task_follows_its_steps(
    engine: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded
) -> None:
    engine.env["CAIRN_DEFAULT_REPOSITORY"] = str(remote.bare)
    engine.env["CAIRN_DEFAULT_PUBLISH_MODE"] = "branch"
    engine.projector()
    engine.scheduler()
    engine.worker("w", "codex,git,gh")
    spec = TaskSpec.model_validate({"title": "Tidy the readme", "task_type": "docs",
                                    "priority": 1, "status": "ready"})  # fmt: skip
    task_id = (await create_task(store, spec, actor="test")).id

    async def reviewed() -> bool:
        return (await load_task(store, task_id)).status == "in_review"

    await wait_for(reviewed, timeout=90, what="the task in review")
    events = [e for e in await log_events(store, keys) if e.agg == task_id]
    steps = [e.data.get("title") for e in events if e.type == "task.step_started"]
    assert steps == ["Write the documentation", "Review", "Prepare the commit"]
    assert [e.type for e in events].count("task.step_completed") == 3
    task = await load_task(store, task_id)
    job = await load_job(store, task.run_ids[-1])
    assert [s["title"] for s in job.steps] == steps


async def test_a_shell_quick_action_runs_on_a_local_repository_and_its_output_is_readable(
    running: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded
) -> None:
    running.worker("w", "shell,git")
    payload = {"repository": str(remote.bare), "targetRuntime": "shell",
               "task": {"instructions": "git log --oneline | wc -l; echo shell says hi",
                        "publish": {"mode": "none"}}}  # fmt: skip
    result = await submit_quick_run(store, JobRequest("task", payload), "count commits",
                                    settings.contract(), actor="test")  # fmt: skip
    job = await finished(store, result.id)
    assert job.status == "succeeded", job.outcome
    entries = await OutputStream(store.redis, keys).read(result.id)
    text = "".join(e.text for e in entries)
    assert "shell says hi" in text and "1\n" in text
    assert job.publish and job.publish["outcome"] == "PUBLISH_DISABLED"
    # It published nothing: its publish stage did not succeed at anything, and telemetry
    # counts a disabled publish, not a success.
    assert [s["status"] for s in job.stages if s["stage"] == "publish"] == ["skipped"]

    async def counted() -> bool:
        return (await Queue(store.redis, keys).metrics()).get("publish|PUBLISH_DISABLED") == 1

    await wait_for(counted, timeout=10, what="the disabled publish counted")
    assert "publish|succeeded" not in await Queue(store.redis, keys).metrics()


async def test_a_container_job_runs_its_image_over_the_checkout(
    running: Engine, store: EventStore, settings: Settings, remote: Seeded, tmp_path: Path
) -> None:
    calls = tmp_path / "docker-calls.txt"
    write_script(running.tmp / "bin" / "docker",
                 f'echo "$*" >> "{calls}"\n[ "$1" = run ] && echo "built by the image" >> '
                 'README.md\necho container output\nexit 0\n')  # fmt: skip
    running.worker("w", "codex,git,docker")
    payload = {"repository": str(remote.bare), "task": {
        "instructions": "build", "publish": {"mode": "branch"},
        "container": {"enabled": True, "image": "alpine:3", "command": ["make", "docs"],
                      "env": {"LEVEL": "3"}}}}  # fmt: skip
    job = await finished(store, await submit(store, settings, "task", payload))
    assert job.status == "succeeded", job.outcome
    [run] = [line for line in calls.read_text().splitlines() if line.startswith("run ")]
    assert "alpine:3 make docs" in run and "-e LEVEL" in run and "LEVEL=3" not in run
    assert job.publish and job.publish["outcome"] == "PUBLISHED_BRANCH"
    shown = run_git("--git-dir", str(remote.bare), "show", f"{job.publish['branch']}:README.md")
    assert "built by the image" in shown


async def test_a_manifest_job_indexes_its_sources(
    running: Engine, store: EventStore, settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "docs"
    source.mkdir()
    (source / "a.md").write_text("one\ntwo\n")
    (source / "b.txt").write_text("three\n")
    running.worker("w", "manifest")
    manifest = {"name": "docs", "version": 1, "sources": [{"name": "docs", "path": str(source)}]}
    job = await finished(store, await submit(store, settings, "manifest",
                                             {"manifest": manifest}))  # fmt: skip
    assert job.status == "succeeded", job.outcome
    execute = next(s for s in job.stages if s["stage"] == "execute")
    assert execute["detail"]["counts"]["files"] == 2
    index = next(a for a in job.artifacts if a["path"].endswith("manifest_index.jsonl"))
    root = Path(running.env["CAIRN_DATA_DIR"]) / "artifacts" / job.id
    lines = (root / index["path"]).read_text().splitlines()
    assert {json.loads(line)["path"] for line in lines} == {"a.md", "b.txt"}


async def test_proposals_written_by_the_agent_are_submitted_and_bad_ones_reported(
    running: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded
) -> None:
    proposals = [{"title": "Add a changelog", "dedup_key": "changelog"},
                 {"title": "Add a changelog too", "dedup_key": "changelog"},
                 {"nope": 1}]  # fmt: skip
    write_script(running.tmp / "bin" / "claude",
                 f"mkdir -p .cairn\ncat > .cairn/proposals.json <<'EOF'\n"
                 f"{json.dumps(proposals)}\nEOF\necho done\n")  # fmt: skip
    running.worker("w", "claude,git")
    payload = {"repository": str(remote.bare), "targetRuntime": "claude",
               "task": {"instructions": "look around", "proposeTasks": True,
                        "publish": {"mode": "none"}}}  # fmt: skip
    job = await finished(store, await submit(store, settings, "task", payload))
    assert job.status == "succeeded", job.outcome
    report = next(s for s in job.stages if s["stage"] == "execute")["detail"]["proposals"]
    assert (len(report["submitted"]), len(report["merged"]), len(report["rejected"])) == (1, 1, 1)
    submitted = [e for e in await log_events(store, keys) if e.type == "proposal.submitted"]
    assert len(submitted) == 1


async def test_the_agent_planner_runs_on_a_worker_and_its_plan_becomes_a_preview(
    running: Engine, store: EventStore, settings: Settings, remote: Seeded
) -> None:
    # The whole path: the planning job runs on a worker, its agent writes .cairn/plan.json,
    # and the worker hands the plan to the import, which is then planned with a preview.
    plan = {"tasks": [{"key": "schema", "title": "Design the schema"},
                      {"key": "api", "title": "Build the API", "depends_on": ["schema"]}]}
    write_script(running.tmp / "bin" / "claude",
                 f"mkdir -p .cairn\ncat > .cairn/plan.json <<'EOF'\n"
                 f"{json.dumps(plan)}\nEOF\necho planned\n")  # fmt: skip
    running.worker("w", "claude,git")
    request = ImportRequest.model_validate({"project": "planned", "source": "# PRD\n## Work\nx"})
    result, job_id = await request_agent_plan(store, request, settings.contract(), actor="t",
                                              repository=str(remote.bare), runtime="claude")
    job = await finished(store, job_id)
    assert job.status == "succeeded", job.outcome

    async def planned() -> bool:
        state = await load_import(store, result.id)
        return state is not None and state.status == "planned"

    await wait_for(planned, what="the import planned")
    state = await load_import(store, result.id)
    assert state is not None and state.plan == plan and state.preview_id


async def test_a_pause_holds_a_running_step_where_it_is_and_a_resume_lets_it_go_on(
    running: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded
) -> None:
    """Pause stops the step's processes at once (not at the next step), within the lease; the
    time held counts against neither its step time nor its silence; resume goes on."""
    running.env["CAIRN_IDLE_TIMEOUT_S"] = "2"  # a pause three times as long is no silence
    running.worker("w", "shell,git")
    # Long lines: the live output holds back a secret's length before it sends.
    ticking_script = "for i in $(seq 1 30); do printf 'tick %s%400s\\n' $i .; sleep 0.1; done"
    payload = {"repository": str(remote.bare), "targetRuntime": "shell",
               "task": {"instructions": ticking_script, "publish": {"mode": "none"}}}
    result = await submit_quick_run(store, JobRequest("task", payload), "tick",
                                    settings.contract(), actor="test")  # fmt: skip

    async def ticks() -> int:
        entries = await OutputStream(store.redis, keys).read(result.id)
        return "".join(e.text for e in entries if e.stream != "transcript").count("tick ")

    async def ticking() -> bool:
        return await ticks() >= 3

    await wait_for(ticking, timeout=60, what="the step ticking")
    await pause_job(store, result.id, actor="test", reason="hold on")
    await asyncio.sleep(1.5)  # the pause reaches it (a poll), the last batch goes out
    held = await ticks()
    await asyncio.sleep(6)
    assert await ticks() == held < 30  # nothing ran while it was held
    await resume_job(store, result.id, actor="test")
    job = await finished(store, result.id, timeout=60)
    assert job.status == "succeeded", job.outcome
    assert await ticks() == 30
