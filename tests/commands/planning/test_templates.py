"""Templates on the real store: an edited template's steps are what a board task's next run
gets; a task naming a saved template of its own runs that; a template a run cannot fill blocks
the task, saying which input it needs."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.commands.jobs.job import load_job
from cairn.commands.jobs.task_runs import request_task_run
from cairn.commands.planning.templates import load_template, save_template
from cairn.commands.tasks.task import create_task, load_task
from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.planning.templates import TemplateBody
from cairn.domain.tasks.pipelines import PIPELINES
from cairn.domain.tasks.spec import TaskSpec
from cairn.domain.tasks.states import Flags
from cairn.streams.store import EventStore

CONTRACT = ContractSettings(default_repository="acme/app")


async def ready_task(store: EventStore, **fields: Any) -> str:
    spec = TaskSpec.model_validate({"title": "Tidy", "task_type": "docs", "priority": 1,
                                    "status": "ready", **fields})  # fmt: skip
    return (await create_task(store, spec, actor="test")).id


async def run_steps(store: EventStore, task_id: str) -> list[dict[str, Any]]:
    _, job_id = await request_task_run(store, task_id, CONTRACT, Flags(), actor="scheduler")
    steps: list[dict[str, Any]] = (await load_job(store, job_id)).payload["task"]["steps"]
    return steps


def template(slug: str, *steps: str, **fields: Any) -> TemplateBody:
    return TemplateBody.model_validate({"slug": slug, "title": slug, **fields, "steps": [
        {"id": f"s{i}", "title": s, "instructions": f"{s}, please"} for i, s in enumerate(steps)
    ]})  # fmt: skip


async def test_an_edited_template_is_what_the_next_run_of_a_board_task_gets(
    store: EventStore,
) -> None:
    first = await ready_task(store)
    assert [s["id"] for s in await run_steps(store, first)] == [s.id for s in PIPELINES["docs"]]
    saved = await save_template(store, template("docs", "Write it", "Check the links"),
                                actor="admin")  # fmt: skip
    assert saved.written == 2
    second = await ready_task(store)
    assert [s["title"] for s in await run_steps(store, second)] == ["Write it", "Check the links"]
    stored = await load_template(store, "docs")
    assert stored is not None and stored.numbers() == [1, 2]
    same = await save_template(store, template("docs", "Write it", "Check the links"),
                               actor="admin")  # fmt: skip
    assert same.written == 0


async def test_a_task_runs_the_template_it_names(store: EventStore) -> None:
    await save_template(store, template("audit", "Audit", "Report", inputs=[
        {"name": "scope", "type": "string", "default": "all"}]), actor="admin")  # fmt: skip
    task_id = await ready_task(store, pipeline_template="audit")
    assert [s["title"] for s in await run_steps(store, task_id)] == ["Audit", "Report"]


async def test_a_template_the_run_cannot_fill_blocks_the_task_naming_the_input(
    store: EventStore,
) -> None:
    await save_template(store, TemplateBody.model_validate({
        "slug": "deploy", "title": "Deploy", "inputs": [{"name": "env", "type": "string"}],
        "steps": [{"id": "go", "title": "Deploy to {{env}}", "instructions": "go"}],
    }), actor="admin")  # fmt: skip
    task_id = await ready_task(store, pipeline_template="deploy")
    with pytest.raises(ValidationFailed) as refused:  # the scheduler logs it
        await request_task_run(store, task_id, CONTRACT, Flags(), actor="scheduler")
    assert refused.value.errors[0]["path"] == "inputs.env"
    task = await load_task(store, task_id)
    assert task.status == "blocked" and task.blocked_reason is not None
    assert task.blocked_reason["errors"][0]["path"] == "inputs.env"
