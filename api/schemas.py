"""The documents the API answers with, as JSON Schema for the OpenAPI document.

Objects stay open (a new field is not a breaking change); the fields a client relies on are
required and typed. The task card follows the Task struct itself, so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from cairn.domain.jobs.job import JobStatus
from cairn.domain.jobs.transcript import KINDS as TRANSCRIPT_KINDS
from cairn.domain.tasks.states import Status
from cairn.domain.tasks.task import Task

JsonSchema = dict[str, Any]


def ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, JsonSchema], **optional: JsonSchema) -> JsonSchema:
    return {"type": "object", "required": list(required), "properties": {**required, **optional}}


STRING: JsonSchema = {"type": "string"}
INTEGER: JsonSchema = {"type": "integer"}
BOOLEAN: JsonSchema = {"type": "boolean"}
OBJECT: JsonSchema = {"type": "object"}
NULLABLE_STRING: JsonSchema = {"type": ["string", "null"]}
NULLABLE_INTEGER: JsonSchema = {"type": ["integer", "null"]}
NULLABLE_OBJECT: JsonSchema = {"type": ["object", "null"]}
STRINGS: JsonSchema = {"type": "array", "items": STRING}
COUNTS: JsonSchema = {"type": "object", "additionalProperties": INTEGER}
TRANSCRIPT_ENTRY: JsonSchema = {
    "type": "object", "required": ["kind", "step", "seq"],
    "properties": {"kind": {"type": "string", "enum": list(TRANSCRIPT_KINDS)}, "step": INTEGER,
                   "seq": INTEGER},
}  # fmt: skip
# Tokens and cost: a step's, or a sum of steps (a job's, a runtime's, a project's).
USAGE: JsonSchema = _object(
    {"tokens_in": INTEGER, "tokens_out": INTEGER},
    tokens_cached=INTEGER, cost_usd={"type": ["number", "null"]}, model=STRING, steps=INTEGER,
    steps_without_cost=INTEGER,
)


@dataclass(frozen=True)
class Media:
    """A success body that comes in several media types (a file served as it is)."""

    content: dict[str, JsonSchema]


# An artifact: text and JSON shown as they are, anything else a download.
ARTIFACT_FILE = Media(
    {
        "text/plain": STRING,
        "application/json": {},
        "application/octet-stream": {"type": "string", "format": "binary"},
    }
)


def _task_schema() -> JsonSchema:
    _, components = msgspec.json.schema_components(
        [Task], ref_template="#/components/schemas/{name}"
    )
    schema: JsonSchema = components["Task"]
    schema["properties"]["status"] = {"type": "string", "enum": [s.value for s in Status]}
    return schema


def components() -> dict[str, JsonSchema]:
    """Every response schema, by the name `ref` uses."""
    event = _object(
        {"id": STRING, "type": STRING, "version": INTEGER, "ts": STRING, "data": {}},
        actor=NULLABLE_STRING, correlation_id=NULLABLE_STRING, causation_id=NULLABLE_STRING,
        schema=INTEGER, position=STRING,
    )  # fmt: skip
    blocker = _object({"id": STRING, "title": NULLABLE_STRING, "status": STRING,
                       "resolved": BOOLEAN})  # fmt: skip
    card = {
        "allOf": [
            ref("Task"),
            _object(
                {"blockers": {"type": "array", "items": blocker}, "waiting_on": STRINGS,
                 "can_move_to_ready": BOOLEAN},
                blocked=_object({"reason": OBJECT, "to_unblock": STRING}),
                usage={"anyOf": [{"type": "null"}, USAGE]},  # a task's: over all its runs
            ),
        ]
    }  # fmt: skip
    job_status = {"type": "string", "enum": [s.value for s in JobStatus]}
    job = _object(
        {"id": STRING, "version": INTEGER, "type": STRING, "submittedType": STRING,
         "status": job_status, "project": STRING, "source": STRING, "priority": INTEGER,
         "maxAttempts": INTEGER, "attempt": INTEGER, "payload": {}, "normalized": OBJECT,
         "requiredCapabilities": STRINGS, "warnings": STRINGS,
         "missingCapabilities": {"type": ["array", "null"], "items": STRING},
         **_run_detail()},
        taskId=NULLABLE_STRING, affinityKey=NULLABLE_STRING, workerId=NULLABLE_STRING,
        createdAt=NULLABLE_STRING, updatedAt=NULLABLE_STRING, outcome={"type": ["object", "null"]},
        branches=NULLABLE_OBJECT, pauseReason=NULLABLE_STRING,
        publish={"anyOf": [{"type": "null"}, _object(
            {"outcome": STRING}, branch=NULLABLE_STRING, prUrl=NULLABLE_STRING,
            commit=NULLABLE_STRING, detail=OBJECT, attempt=NULLABLE_INTEGER)]},
        follows=NULLABLE_STRING, resumeSession=NULLABLE_STRING,
        followedBy={"type": "array", "items": _object({"jobId": STRING, "message": STRING})},
    )  # fmt: skip
    return {
        "Task": _task_schema(),
        "TaskCard": card,
        "CommandResult": _object(
            {"id": STRING, "version": INTEGER, "position": STRING, "duplicate": BOOLEAN}
        ),
        "TaskPage": _object(
            {"items": {"type": "array", "items": ref("Task")}, "next_cursor": NULLABLE_STRING}
        ),
        "Board": _object(
            {
                "project": STRING,
                "total": INTEGER,
                "columns": {
                    "type": "array",
                    "items": _object(
                        {"status": STRING, "cards": {"type": "array", "items": ref("TaskCard")}}
                    ),
                },
            }
        ),
        "Events": _object({"id": STRING, "events": {"type": "array", "items": event}}),
        "TaskRun": _object({"task_id": STRING, "job_id": STRING, "duplicate": BOOLEAN}),
        "StateMachine": _object(
            {
                "states": STRINGS,
                "initial": STRINGS,
                "transitions": OBJECT,
                "guards": OBJECT,
                "flags": OBJECT,
            }
        ),
        "Job": job,
        "JobPage": _object(
            {
                "items": {"type": "array", "items": ref("Job")},
                "nextCursor": NULLABLE_STRING,
                "counts": COUNTS,
            }
        ),
        "Telemetry": _object(
            {
                name: COUNTS
                for name in (
                    "volumeByType",
                    "legacyByType",
                    "failuresByRuntime",
                    "failuresByStage",
                    "successesByRuntime",
                    "publishOutcomes",
                )
            },
            publishOutcomeRates={"type": "object", "additionalProperties": {"type": "number"}},
        ),
        "QuickRun": _object(
            {
                "id": STRING,
                # null when an Idempotency-Key already named a queue job (see commands/jobs)
                "prompt": NULLABLE_STRING,
                "status": job_status,
                "logs_ref": STRING,
                "project": STRING,
            },
            started_at=NULLABLE_STRING,
            finished_at=NULLABLE_STRING,
            result_summary=NULLABLE_STRING,
            promoted_task_id=NULLABLE_STRING,
        ),
        "Promotion": _object({"id": STRING, "promoted_task_id": STRING, "duplicate": BOOLEAN}),
        "Workers": _object(
            {
                "workers": {"type": "array", "items": _object({"id": STRING})},
                "pause": {"type": "string", "enum": ["drain", "quiesce", "off"]},
            }
        ),
        "PauseMode": _object({"mode": {"type": "string", "enum": ["drain", "quiesce", "off"]}}),
        "Artifact": _object(
            {
                "name": STRING,
                "path": STRING,
                "contentType": STRING,
                "truncated": BOOLEAN,
                "attempt": INTEGER,
            },
            size=NULLABLE_INTEGER,
            sha256=NULLABLE_STRING,
            ref=NULLABLE_STRING,
        ),
        "Artifacts": _object({"items": {"type": "array", "items": ref("Artifact")}}),
        # Entries of domain/jobs/transcript.py: `kind` says which fields it has.
        "Transcript": _object(
            {
                "items": {"type": "array", "items": TRANSCRIPT_ENTRY},
                "next": NULLABLE_STRING,
                "running": BOOLEAN,
            }
        ),
        "OperatorMessage": _object({"id": INTEGER, "text": STRING, "ts": STRING}),
        "Output": _object(
            {
                "items": {
                    "type": "array",
                    "items": _object(
                        {"id": STRING, "text": STRING, "step": NULLABLE_INTEGER, "stream": STRING}
                    ),
                },
                "next": STRING,
            }
        ),
    }


def _run_detail() -> dict[str, JsonSchema]:
    """The job's execution detail that every job view carries (api/jobs/run_views.py)."""
    step = _object(
        {"index": INTEGER, "stepId": STRING, "status": STRING, "durationMs": INTEGER,
         "files": INTEGER, "insertions": INTEGER, "deletions": INTEGER},
        title=NULLABLE_STRING, startedAt=NULLABLE_STRING, finishedAt=NULLABLE_STRING,
        exitStatus=NULLABLE_INTEGER, usage={"anyOf": [{"type": "null"}, USAGE]},
        error=NULLABLE_OBJECT, env=STRINGS, message=NULLABLE_STRING,
        agent={"anyOf": [{"type": "null"}, _object(
            {"cli": STRING}, version=NULLABLE_STRING, signin=STRING)]},
        sandbox={"anyOf": [{"type": "null"}, _object(
            {"kind": STRING}, network=NULLABLE_STRING, user=NULLABLE_STRING,
            reason=NULLABLE_STRING, limits=_object({}, memoryBytes=NULLABLE_INTEGER,
            processes=NULLABLE_INTEGER, openFiles=NULLABLE_INTEGER, diskBytes=NULLABLE_INTEGER),
        )]},
    )  # fmt: skip
    return {
        "usage": {"anyOf": [{"type": "null"}, USAGE]},
        "steps": {"type": "array", "items": step},
        "paused": BOOLEAN,
        "operatorMessages": {"type": "array", "items": ref("OperatorMessage")},
        "artifacts": {"type": "array", "items": ref("Artifact")},
    }
