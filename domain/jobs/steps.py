"""The steps of a job's attempt as its state keeps them: one record per runtime invocation,
opened by `job.step_started` and closed by `job.step_finished` (matched by index)."""

from __future__ import annotations

from typing import Any

from cairn.domain.jobs.events import JobStepFinished, JobStepStarted

Step = dict[str, Any]


def step_started(steps: list[Step], e: JobStepStarted, ts: str) -> list[Step]:
    """`steps` with the started step appended, running."""
    opened: Step = {
        "index": e.index, "step_id": e.step_id, "title": e.title, "status": "running",
        "started_at": ts, "finished_at": None, "exit_status": None, "duration_ms": 0,
        "files": 0, "insertions": 0, "deletions": 0, "usage": None, "error": None,
    }  # fmt: skip
    if e.env:
        opened["env"] = e.env
    if e.agent is not None:
        opened["agent"] = e.agent
    if e.sandbox is not None:
        opened["sandbox"] = e.sandbox
    return [*steps, opened]


def step_finished(steps: list[Step], e: JobStepFinished, ts: str) -> list[Step]:
    """`steps` with the running step of `e.index` closed; a step that was never seen to start
    is recorded all the same (an outcome is never dropped)."""
    result: Step = {
        "status": e.outcome, "finished_at": ts, "exit_status": e.exit_status,
        "duration_ms": e.duration_ms, "files": e.files, "insertions": e.insertions,
        "deletions": e.deletions, "usage": e.usage, "error": e.error,
    }  # fmt: skip
    if e.message is not None:
        result["message"] = e.message
    if e.session_id is not None:
        result["session_id"] = e.session_id
    if e.refused_edits:
        result["refused_edits"] = e.refused_edits
    if e.transcript_entries:
        result["transcript_entries"] = e.transcript_entries
    for at in range(len(steps) - 1, -1, -1):
        if steps[at]["index"] == e.index and steps[at]["status"] == "running":
            return [*steps[:at], {**steps[at], **result}, *steps[at + 1 :]]
    unopened: Step = {"index": e.index, "step_id": e.step_id, "title": None, "started_at": None}
    return [*steps, {**unopened, **result}]


def step_label(step: Step) -> str:
    """How a step is named to a person: its title, else its id."""
    return str(step.get("title") or step["step_id"])


def stopped_in(steps: list[Step]) -> str | None:
    """The step an attempt stopped in, if its last step did not succeed."""
    if steps and steps[-1]["status"] != "succeeded":
        return step_label(steps[-1])
    return None
