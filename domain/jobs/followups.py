"""Follow-ups: "now also do X" on top of a finished run. A follow-up is a new job linked to the
one it continues (`follows` / `followed_by`): the same repository and runtime, the message as its
instructions, starting from the branch the first run pushed (so its commit lands on top, and a
pull request that run opened is updated, not doubled), resuming the agent's session that run
recorded (the worker falls back to a fresh session told what happened, and says so)."""

from __future__ import annotations

import copy
from typing import Any

from cairn.domain.decision import Decision
from cairn.domain.errors import InvalidTransition, ValidationFailed
from cairn.domain.jobs.events import JobFollowedUp, JobSubmitted
from cairn.domain.jobs.job import TERMINAL, Job

MESSAGE_MAX = 20_000
PUSHED = ("PUBLISHED_BRANCH", "PUBLISHED_PR")


def check_message(message: Any, path: str = "body.message") -> str:
    """The follow-up's message, trimmed; ValidationFailed at `path` when it is not one."""
    if not isinstance(message, str) or not message.strip():
        reason = "say what the agent should do next (a non-empty string)"
        raise ValidationFailed(f"{path}: {reason}", [{"path": path, "reason": reason}])
    if len(message) > MESSAGE_MAX:
        reason = f"at most {MESSAGE_MAX:,} characters"
        raise ValidationFailed(f"{path}: {reason}", [{"path": path, "reason": reason}])
    return message.strip()


def last_session(job: Job) -> str | None:
    """The agent session the job's last attempt left (its last step that recorded one)."""
    for step in reversed(job.steps):
        if step.get("session_id"):
            return str(step["session_id"])
    return None


def decide_follow_up(job: Job, new_job_id: str, message: str) -> Decision:
    """A follow-up of a finished task job, and the link on the job it follows."""
    if job.job_type != "task" or job.source == "orchestrator":
        raise InvalidTransition(
            f"job {job.id} is a {job.job_type} job of {job.source}; only a task job's agent (not "
            "an orchestrator run's) can be followed up",
            job_type=job.job_type,
        )
    if job.status not in TERMINAL:
        raise InvalidTransition(
            f"job {job.id} is {job.status}; a follow-up continues a finished run (to a "
            "running one, send a message: POST /api/queue/jobs/{id}/messages)",
            job_status=job.status, allowed_statuses=sorted(TERMINAL),
        )  # fmt: skip
    runtime = str(job.normalized.get("targetRuntime") or "")
    if runtime == "shell":
        raise InvalidTransition(
            f"job {job.id} ran shell commands; there is no agent session to continue",
            runtime=runtime,
        )
    submitted = JobSubmitted(
        project=job.project, job_type=job.job_type, submitted_type=job.job_type,
        source=job.source, payload={"followUpOf": job.id, "message": message},
        normalized=follow_up_payload(job, message), required_capabilities=job.required_capabilities,
        priority=job.priority, max_attempts=job.max_attempts, affinity_key=job.affinity_key,
        task_id=job.task_id, follows=job.id, resume_session=last_session(job),
    )  # fmt: skip
    return {job.id: [JobFollowedUp(new_job_id=new_job_id, message=message)],
            new_job_id: [submitted]}  # fmt: skip


def follow_up_payload(job: Job, message: str) -> dict[str, Any]:
    """The follow-up's normalized payload: the first job's, with the message as its only
    instructions, on the branch that job pushed (else where it started)."""
    payload = copy.deepcopy(job.normalized)
    task: dict[str, Any] = payload.setdefault("task", {})
    task["instructions"] = message
    task["steps"] = []
    if task.get("skill"):
        task["skill"] = {"id": "auto", "args": {}, "requiredCapabilities": []}
    git = dict(task.get("git") or {})
    publish = dict(task.get("publish") or {})
    branches, published = job.branches or {}, job.publish or {}
    if published.get("outcome") in PUSHED and published.get("branch"):
        git["startingBranch"] = published["branch"]
        git["newBranch"] = None
        if publish.get("mode") == "pr" and not publish.get("prBaseBranch"):
            # The pull request stays into the branch the first run started from.
            publish["prBaseBranch"] = branches.get("starting") or branches.get("default")
    task["git"], task["publish"] = git, publish
    return payload
