"""The agent planner with a fake CLI: its `.cairn/plan.json` becomes a preview checked like a
person's; a cyclic plan is refused naming the edge, and nothing else is appended."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import msgspec

from cairn.commands.jobs.job import load_job
from cairn.commands.planning.import_plans import (
    PLAN_FILE,
    request_agent_plan,
    submit_plan_from_file,
)
from cairn.commands.planning.imports import commit_import, load_import, recall_preview
from cairn.commands.tasks.task import load_tasks
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.planning.preview import ImportRequest
from cairn.domain.tasks.states import Flags
from cairn.streams.store import EventStore

CONTRACT = ContractSettings(default_repository="acme/app")
FAKE_PLANNER = """#!/bin/sh
# A stand-in for an agent CLI: writes the plan it was given in PLAN into .cairn/plan.json.
mkdir -p .cairn && printf '%s' "$PLAN" > .cairn/plan.json
"""
GOOD = {"tasks": [{"key": "schema", "title": "Design the schema", "priority": "high"},
                  {"key": "api", "title": "Build the API", "depends_on": ["schema"]},
                  {"key": "docs", "title": "Document it", "task_type": "docs",
                   "depends_on": ["api"]}]}  # fmt: skip
CYCLIC = {"tasks": [{"key": "a", "title": "A", "depends_on": ["b"]},
                    {"key": "b", "title": "B", "depends_on": ["a"]}]}  # fmt: skip


async def run_planner(store: EventStore, tmp: Path, plan: object, project: str) -> tuple[str, Path]:
    request = ImportRequest.model_validate({"project": project, "source": "# PRD\n## Work\ntext"})
    result, _ = await request_agent_plan(store, request, CONTRACT, actor="t")
    cli = tmp / "fake-planner"
    cli.write_text(FAKE_PLANNER)
    cli.chmod(0o755)
    workspace = tmp / project
    workspace.mkdir()
    subprocess.run([str(cli)], cwd=workspace, env={"PLAN": json.dumps(plan)}, check=True)
    return result.id, workspace


async def test_a_plan_becomes_a_preview_to_commit(store: EventStore, tmp_path: Path) -> None:
    import_id, workspace = await run_planner(store, tmp_path, GOOD, "agents")
    job_id = (await load_import(store, import_id)).planner_job_id  # type: ignore[union-attr]
    assert job_id is not None
    job = await load_job(store, job_id)
    assert await submit_plan_from_file(store, job, workspace) is None  # not finished well
    state = await load_import(store, import_id)
    assert state is not None and state.status == "plan_failed"
    import_id, workspace = await run_planner(store, tmp_path, GOOD, "agents2")
    state = await load_import(store, import_id)
    assert state is not None and state.planner_job_id
    done = msgspec.structs.replace(await load_job(store, state.planner_job_id), status="succeeded")
    preview_id = await submit_plan_from_file(store, done, workspace)
    assert preview_id is not None
    planned = await load_import(store, import_id)
    assert planned is not None and planned.status == "planned" and planned.plan == GOOD
    result, previewed = await commit_import(store, await recall_preview(store, preview_id),
                                            Flags(), actor="t", preview_id=preview_id)  # fmt: skip
    ids = previewed.task_ids
    tasks = await load_tasks(store, ids.values())
    assert tasks[ids["api"]].blocked_by == [ids["schema"]] and tasks[ids["schema"]].priority == 2
    assert result.id == import_id
    assert await submit_plan_from_file(store, done, workspace) is None  # recorded once


async def test_a_cyclic_plan_is_refused_naming_the_edge(store: EventStore, tmp_path: Path) -> None:
    import_id, workspace = await run_planner(store, tmp_path, CYCLIC, "cycles")
    state = await load_import(store, import_id)
    assert state is not None and state.planner_job_id
    done = msgspec.structs.replace(await load_job(store, state.planner_job_id), status="succeeded")
    assert await submit_plan_from_file(store, done, workspace) is None
    failed = await load_import(store, import_id)
    assert failed is not None and failed.status == "plan_failed"
    assert failed.plan_errors[0]["path"] == "plan.tasks[0].depends_on[0]"
    assert "cycle" in failed.plan_errors[0]["reason"]
    assert failed.created_task_ids == [] and (workspace / PLAN_FILE).is_file()


async def test_a_plan_that_is_not_an_object_is_recorded_as_failed(
    store: EventStore, tmp_path: Path
) -> None:
    # A JSON array is not a plan: the import ends plan_failed naming `plan`, not stuck planning.
    import_id, workspace = await run_planner(store, tmp_path, [1], "arrays")
    state = await load_import(store, import_id)
    assert state is not None and state.planner_job_id
    done = msgspec.structs.replace(await load_job(store, state.planner_job_id), status="succeeded")
    assert await submit_plan_from_file(store, done, workspace) is None
    failed = await load_import(store, import_id)
    assert failed is not None and failed.status == "plan_failed"
    assert failed.plan_errors[0]["path"] == "plan"
