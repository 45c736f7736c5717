"""How a job's execution detail is shown: its steps, branches, publish result, artifacts and
operator messages, camelCase like the rest of a job."""

from __future__ import annotations

from typing import Any

from cairn.domain.jobs.job import Job
from cairn.streams.artifacts import content_type_of


def run_detail(job: Job) -> dict[str, Any]:
    """The fields the job view adds for its execution."""
    return {
        "steps": [step_view(s) for s in job.steps],
        "branches": job.branches,
        "publish": publish_view(job.publish) if job.publish is not None else None,
        "paused": job.paused,
        "pauseReason": job.pause_reason,
        "operatorMessages": job.operator_messages,
        "artifacts": [artifact_view(a) for a in job.artifacts],
        "usage": job.usage,
    }


def step_view(step: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": step["index"],
        "stepId": step["step_id"],
        "title": step.get("title"),
        "status": step["status"],
        "startedAt": step.get("started_at"),
        "finishedAt": step.get("finished_at"),
        "exitStatus": step.get("exit_status"),
        "durationMs": step.get("duration_ms", 0),
        "files": step.get("files", 0),
        "insertions": step.get("insertions", 0),
        "deletions": step.get("deletions", 0),
        "usage": step.get("usage"),
        "error": step.get("error"),
        "env": step.get("env", []),
        "message": step.get("message"),
        "agent": step.get("agent"),
        "sandbox": _sandbox_view(step.get("sandbox")),
    }


def _sandbox_view(sandbox: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where the step ran: bubblewrap with its network and limits, or "none" and why."""
    if sandbox is None:
        return None
    limits = sandbox.get("limits") or {}
    return {
        "kind": sandbox.get("kind"), "network": sandbox.get("network"),
        "user": sandbox.get("user"), "reason": sandbox.get("reason"),
        "limits": {"memoryBytes": limits.get("memory_bytes"), "processes": limits.get("processes"),
                   "openFiles": limits.get("open_files"), "diskBytes": limits.get("disk_bytes")},
    }  # fmt: skip


def publish_view(publish: dict[str, Any]) -> dict[str, Any]:
    return {
        "outcome": publish["outcome"],
        "branch": publish.get("branch"),
        "prUrl": publish.get("pr_url"),
        "commit": publish.get("commit"),
        "detail": publish.get("detail", {}),
        "attempt": publish.get("attempt"),
    }


def artifact_view(artifact: dict[str, Any]) -> dict[str, Any]:
    """An artifact as its job.artifact_added recorded it. One written before artifacts had a
    path was stored by the worker at `attempt-<n>/<name>`, so that is where it is served."""
    name = str(artifact["name"])
    path = artifact.get("path") or f"attempt-{artifact['attempt']}/{name}"
    return {
        "name": name,
        "path": path,
        "ref": artifact.get("ref"),
        "size": artifact.get("size"),
        "sha256": artifact.get("sha256"),
        "contentType": artifact.get("content_type") or content_type_of(path),
        "truncated": bool(artifact.get("truncated", False)),
        "attempt": artifact["attempt"],
    }
