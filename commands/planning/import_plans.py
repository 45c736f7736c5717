"""The agent planner: a job on a worker reads the PRD and writes `.cairn/plan.json` in its
workspace; once it ends, the plan is checked exactly as a person's (shape, keys, references,
no cycle) and kept on the import as its preview, to commit like any other."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from cairn.commands.planning.imports import import_id_for, load_import, preview_import
from cairn.commands.runner import CommandResult, Plan, id_for_key, run_command, writes
from cairn.domain.decision import Decision
from cairn.domain.errors import CairnError, ValidationFailed
from cairn.domain.jobs.job import Job, JobSource, JobStatus, SubmitOptions, decide_submit
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.planning.imports import decide_plan_result, plan_events
from cairn.domain.planning.preview import DEFAULT_DOCUMENT, ImportRequest, request_digest
from cairn.domain.tasks.spec import parse_model
from cairn.streams.store import EventStore, Meta

PLAN_FILE = ".cairn/plan.json"
MAX_PLAN_BYTES = 1_048_576
_HEADER = "Cairn PRD planner for import {import_id}."
_HEADER_RE = re.compile(r"^Cairn PRD planner for import ([a-z]+-\d{2,4}-[0-9a-z]{16,40})\.")
INSTRUCTIONS = """{header}

Read the product requirements document below and plan it as a task graph. Write the plan as
JSON to {plan_file} (create the folder) and change nothing else. The file holds one object:

{{"tasks": [{{"key": "short-stable-id", "title": "...", "description": "...",
  "acceptance_criteria": ["..."], "task_type": "feature|bug_fix|hotfix|chore|refactor|docs|test|research",
  "priority": 0-3, "depends_on": ["key of a task that must finish first"]}}]}}

Granularity: {granularity}. Keys must be unique; depends_on names keys of this plan only and
must not form a cycle.

--- PRD ---
{source}
"""  # noqa: E501


async def request_agent_plan(
    store: EventStore, request: ImportRequest, contract: ContractSettings, *, actor: str,
    repository: str | None = None, runtime: str | None = None,
) -> tuple[CommandResult, str]:  # fmt: skip
    """Queue the planning job and record it on the import, in one append."""
    document = request.document or DEFAULT_DOCUMENT
    import_id = import_id_for(store.keys, request.project, document)
    digest = request_digest(request, 0)
    job_id = id_for_key(store.keys, "job", request.project, f"plan:{import_id}:{digest}")
    instructions = INSTRUCTIONS.format(
        header=_HEADER.format(import_id=import_id), plan_file=PLAN_FILE,
        granularity=request.granularity, source=request.source,
    )  # fmt: skip
    payload: dict[str, Any] = {"task": {"instructions": instructions, "publish": {"mode": "none"}}}
    if repository:
        payload["repository"] = repository
    if runtime:
        payload["targetRuntime"] = runtime
    submission = decide_submit(
        normalize_job("task", payload, contract),
        SubmitOptions(project=request.project, source=JobSource.QUEUE),
    )
    kept = request.model_dump(mode="json", exclude={"source"})

    async def plan() -> Plan:
        state = await load_import(store, import_id)
        if state is not None and state.planner_job_id == job_id:
            return Plan(subject_version=state.version)
        decision: Decision = {
            import_id: plan_events(job_id, request.project, document, kept),
            job_id: [*submission],
        }
        version = state.version if state else 0
        return Plan(writes=writes(decision, {import_id: version}), subject_version=version)

    result = await run_command(store, import_id, plan, meta=Meta(actor=actor))
    return result, job_id


def planning_import_of(job: Job) -> str | None:
    """The import a planning job plans for (named in its instructions' first line), if any."""
    instructions = str(((job.normalized or {}).get("task") or {}).get("instructions") or "")
    found = _HEADER_RE.match(instructions)
    return found[1] if found else None


async def submit_plan_from_file(store: EventStore, job: Job, workspace: Path) -> str | None:
    """Once a planning job ended: check `<workspace>/.cairn/plan.json` and keep it on the
    import as a preview (`import.planned`), or record why there is none (`import.plan_failed`,
    with every fault's path). Not a planning job, or one already recorded: nothing. Returns the
    preview id when a plan was kept."""
    import_id = planning_import_of(job)
    state = await load_import(store, import_id) if import_id else None
    if state is None or state.planner_job_id != job.id or state.status != "planning":
        return None
    plan, errors, reason, preview_id = None, [], "", ""
    path = workspace / PLAN_FILE
    try:
        if job.status != JobStatus.SUCCEEDED:
            raise ValidationFailed(f"the planning job ended {job.status}", [])
        if not path.is_file():
            raise ValidationFailed(f"the planner wrote no {PLAN_FILE}",
                                   [{"path": "plan", "reason": "missing"}])  # fmt: skip
        if path.stat().st_size > MAX_PLAN_BYTES:
            raise ValidationFailed(f"{PLAN_FILE} is larger than {MAX_PLAN_BYTES} bytes",
                                   [{"path": "plan", "reason": "too large"}])  # fmt: skip
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as e:
            raise ValidationFailed(
                f"{PLAN_FILE} is not JSON", [{"path": "plan", "reason": str(e)}]
            ) from e
        request = parse_model(ImportRequest, {**state.planning, "plan": data})
        preview_id = (await preview_import(store, request)).preview_id
        plan = data
    except CairnError as e:
        errors, reason = list(e.details.get("errors", [])), e.message

    async def record() -> Plan:
        current = await load_import(store, state.id)
        assert current is not None
        decision = decide_plan_result(current, job.id, plan, preview_id, errors, reason)
        return Plan(writes=writes(decision, {state.id: current.version}),
                    subject_version=current.version)  # fmt: skip

    await run_command(store, state.id, record, meta=Meta(actor="planner"))
    return preview_id or None
