"""An orchestrator run as an aggregate (kind `orun`): an instruction for a service, planned by an
agent (`analyze`, then `patch`, in a task job of its own: the agent sandbox, transcripts and the
queue's leases, retries and cancel as for any job), approved when the service or the submitter
asks for it, then applied by the operator's commands (`build`, `restart`, `verify`, and a
`rollback` when one of them fails after a patch) in an apply job.

The run follows its jobs in the same append as their events (commands/jobs/job.py), so a run
never says less or more than its jobs did. One run holds a service at a time (services.py):
from its planning to its end, so a plan is always made against the service it is applied to;
the next run in line starts in the append that ends the last."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import msgspec

from cairn.domain.credentials import redact_credentials
from cairn.domain.decision import Decision
from cairn.domain.errors import CorruptStream, InvalidTransition, NotAllowed, ValidationFailed
from cairn.domain.events import Event
from cairn.domain.jobs.events import JobEvent, JobStepStarted
from cairn.domain.jobs.job import Job, JobSource, SubmitOptions, decide_submit
from cairn.domain.jobs.kinds import AGENT_RUNTIMES, ContractSettings, NormalizedJob
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.orchestrator.services import (
    WAITING_MAX,
    Service,
    ServiceChecked,
    ServiceClaimed,
    ServiceEvent,
    ServiceQueued,
    ServiceReleased,
    capabilities_of,
    last_output,
)
from cairn.domain.upcast import Upcaster, decode_event

PROJECT = "orchestrator"  # the runs, the services and their jobs share one partition
STATES = ("planning", "awaiting_approval", "applying", "verifying", "succeeded", "failed",
          "rolled_back", "rollback_failed", "cancelled")  # fmt: skip
FINAL = frozenset({"succeeded", "failed", "rolled_back", "rollback_failed", "cancelled"})
APPROVALS = ("auto", "required")
REASON_MAX = 2_000
INSTRUCTION_MAX = 20_000
PROPOSAL_PREFIX = "cairn/orchestrator/"  # the plan job's branch: the change as proposed


class RunEvent(Event, frozen=True, kw_only=True, omit_defaults=True):
    pass


class RunRequested(RunEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "orun.requested"
    service: str
    service_id: str
    instruction: str
    runtime: str
    approval: str  # auto, required
    needs_approval: bool
    submitted_by: str
    spec: dict[str, Any]  # the service's definition as the run found it
    approval_timeout_s: float = 86_400.0  # CAIRN_APPROVAL_TIMEOUT when it was submitted


class RunWaiting(RunEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "orun.waiting"
    behind: str  # the run before it in the service's line (the one holding it, if none waits)


class RunPlanning(RunEvent, frozen=True, kw_only=True, omit_defaults=True):
    """The run got the service: its plan job is queued, under the service's rules as they are
    now (a run that waited takes the definition of when its turn came)."""

    TYPE: ClassVar[str] = "orun.planning"
    job_id: str
    spec: dict[str, Any] | None = None
    needs_approval: bool | None = None


class RunPlanned(RunEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "orun.planned"
    files: list[str] = []
    patch: str | None = None  # the patch artifact's ref
    plan: str | None = None  # the plan artifact's ref
    proposal: dict[str, Any] | None = None  # {branch, base, head}: the change as pushed
    redacted: bool = False  # the diff holds text Cairn redacts (shown hidden): approval needed


class RunApprovalRequested(RunEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "orun.approval_requested"
    expires_at: str


class RunApproved(RunEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "orun.approved"
    actor: str


class RunRejected(RunEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "orun.rejected"
    actor: str
    reason: str
    expired: bool = False


class RunApplying(RunEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "orun.applying"
    job_id: str


class RunVerifying(RunEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "orun.verifying"


class RunCancelRequested(RunEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "orun.cancel_requested"
    actor: str


class RunFinished(RunEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "orun.finished"
    state: str  # one of FINAL
    reason: str = ""
    rolled_back: bool = False
    commit: str | None = None
    files: list[str] = []  # a plan outside allowedPaths: the files


RUN_EVENTS: dict[str, type[RunEvent]] = {
    cls.TYPE: cls
    for cls in (RunRequested, RunWaiting, RunPlanning, RunPlanned, RunApprovalRequested,
                RunApproved, RunRejected, RunApplying, RunVerifying, RunCancelRequested,
                RunFinished)
}  # fmt: skip
RUN_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def run_event_from(type_: str, schema: int, data: dict[str, Any]) -> RunEvent:
    return decode_event(RUN_EVENTS, RUN_UPCASTERS, type_, schema, data)


class Run(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    service: str
    service_id: str
    instruction: str
    runtime: str
    approval: str
    needs_approval: bool
    submitted_by: str
    spec: dict[str, Any]
    approval_timeout_s: float = 86_400.0
    state: str = "planning"
    waiting_behind: str | None = None
    plan_job: str | None = None
    apply_job: str | None = None
    files: list[str] = []
    patch: str | None = None
    plan: str | None = None
    proposal: dict[str, Any] | None = None
    planned: bool = False
    redacted: bool = False
    expires_at: str | None = None
    approved_by: str | None = None
    rejected_by: str | None = None
    cancel_requested_by: str | None = None
    reason: str = ""
    rolled_back: bool = False
    commit: str | None = None
    created_at: str = ""
    started_at: str | None = None  # when it got the service
    finished_at: str | None = None
    updated_at: str = ""
    timeline: list[dict[str, Any]] = []  # {type, ts, summary}

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def jobs(self) -> list[str]:
        return [j for j in (self.plan_job, self.apply_job) if j]


def evolve(state: Run | None, event: RunEvent, run_id: str, version: int, ts: str) -> Run:
    expected = 1 if state is None else state.version + 1
    if version != expected:
        raise CorruptStream(f"run {run_id}: event version {version} follows {expected - 1}",
                            aggregate_id=run_id, version=version)  # fmt: skip
    line = {"type": event.TYPE, "ts": ts, "summary": summary(event)}
    if isinstance(event, RunRequested):
        return Run(id=run_id, version=1, service=event.service, service_id=event.service_id,
                   instruction=event.instruction, runtime=event.runtime, approval=event.approval,
                   needs_approval=event.needs_approval, submitted_by=event.submitted_by,
                   spec=event.spec, approval_timeout_s=event.approval_timeout_s, created_at=ts,
                   updated_at=ts, timeline=[line])  # fmt: skip
    if state is None:
        raise CorruptStream(f"run {run_id}: version 1 is {event.TYPE}, not orun.requested",
                            aggregate_id=run_id, version=version)  # fmt: skip
    replace = msgspec.structs.replace
    s = replace(state, version=version, updated_at=ts, timeline=[*state.timeline, line][-200:])
    match event:
        case RunWaiting(behind=behind):
            return replace(s, waiting_behind=behind)
        case RunPlanning(job_id=job_id):
            s = replace(s, plan_job=job_id, waiting_behind=None, started_at=ts)
            if event.spec is not None:
                s = replace(s, spec=event.spec)
            if event.needs_approval is not None:
                s = replace(s, needs_approval=event.needs_approval)
            return s
        case RunPlanned():
            return replace(s, planned=True, files=event.files, patch=event.patch, plan=event.plan,
                           proposal=event.proposal, redacted=event.redacted,
                           needs_approval=s.needs_approval or event.redacted)  # fmt: skip
        case RunApprovalRequested(expires_at=expires_at):
            return replace(s, state="awaiting_approval", expires_at=expires_at)
        case RunApproved(actor=actor):
            return replace(s, approved_by=actor)
        case RunRejected(actor=actor, reason=reason):
            return replace(s, rejected_by=actor, reason=reason)
        case RunApplying(job_id=job_id):
            return replace(s, state="applying", apply_job=job_id)
        case RunVerifying():
            return replace(s, state="verifying")
        case RunCancelRequested(actor=actor):
            return replace(s, cancel_requested_by=actor)
        case RunFinished():
            return replace(s, state=event.state, reason=event.reason or s.reason,
                           rolled_back=event.rolled_back, commit=event.commit,
                           files=event.files or s.files, finished_at=ts)  # fmt: skip
    return s


def summary(event: RunEvent) -> str:
    match event:
        case RunRequested():
            return f"requested by {event.submitted_by} on {event.service}"
        case RunWaiting(behind=behind):
            return f"waits for the service, behind {behind}"
        case RunPlanning(job_id=job_id):
            return f"planning in {job_id}"
        case RunPlanned(files=files):
            return f"planned: {len(files)} file(s) to change"
        case RunApprovalRequested(expires_at=at):
            return f"awaiting approval (expires {at})"
        case RunApproved(actor=actor):
            return f"approved by {actor}"
        case RunRejected(actor=actor, reason=reason, expired=expired):
            return "rejected: the approval expired" if expired else f"rejected by {actor}: {reason}"
        case RunApplying(job_id=job_id):
            return f"applying in {job_id}"
        case RunVerifying():
            return "verifying"
        case RunCancelRequested(actor=actor):
            return f"cancel requested by {actor}"
        case RunFinished(state=state, reason=reason):
            return f"{state}: {reason}" if reason else state
    return event.TYPE


# ---- requests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRequest:
    service: str
    instruction: str
    runtime: str | None = None
    approval: str = "auto"


def check_request(request: RunRequest, settings: ContractSettings) -> str:
    """The runtime the run's agent steps use; ValidationFailed for a bad request."""
    errors = []
    if not request.instruction.strip():
        errors.append({"path": "instruction", "reason": "must say what to do"})
    elif len(request.instruction) > INSTRUCTION_MAX:
        errors.append({"path": "instruction",
                       "reason": f"at most {INSTRUCTION_MAX} characters"})  # fmt: skip
    if request.approval not in APPROVALS:
        errors.append({"path": "approval", "reason": f"one of {', '.join(APPROVALS)}"})
    default = settings.default_runtime if settings.default_runtime in AGENT_RUNTIMES else "codex"
    runtime = request.runtime or default
    if runtime not in AGENT_RUNTIMES:
        errors.append({"path": "runtime",
                       "reason": f"one of {', '.join(AGENT_RUNTIMES)}: the agent that plans "
                                 "and patches"})  # fmt: skip
    if errors:
        first = errors[0]
        raise ValidationFailed(f"{first['path']}: {first['reason']}", errors=errors)
    return runtime


def decide_request(run_id: str, service: Service, request: RunRequest, runtime: str, *,
                   actor: str, plan_job_id: str, approval_timeout_s: float
                   ) -> Decision:  # fmt: skip
    """A new run: it starts planning at once, or waits for the run holding the service."""
    spec = service.spec
    requested = RunRequested(
        service=service.name, service_id=service.id, instruction=request.instruction,
        runtime=runtime, approval=request.approval,
        needs_approval=bool(spec.get("protected")) or request.approval == "required",
        submitted_by=actor, spec=spec, approval_timeout_s=approval_timeout_s,
    )  # fmt: skip
    run = evolve(None, requested, run_id, 1, "")
    if service.holder is None and not service.waiting:
        starting = _start(run, service, plan_job_id)
        return {run_id: [requested, *starting[run_id]],
                **{k: v for k, v in starting.items() if k != run_id}}
    plan_job(run, service)  # checked now, though it is made when the run's turn comes
    if len(service.waiting) >= WAITING_MAX:
        raise InvalidTransition(f"{len(service.waiting)} runs wait for service {service.name}, "
                                "the most it takes: cancel some, or wait",
                                service=service.name)  # fmt: skip
    behind = service.waiting[-1] if service.waiting else service.holder
    assert behind is not None
    return {run_id: [requested, RunWaiting(behind=behind)],
            service.id: [ServiceQueued(run_id=run_id)]}


def _start(run: Run, service: Service, plan_job_id: str) -> Decision:
    """The run takes the service and its plan job is queued, under the service's rules now."""
    needs = bool(service.spec.get("protected")) or run.approval == "required"
    planning = RunPlanning(job_id=plan_job_id, spec=service.spec, needs_approval=needs)
    job = plan_job(msgspec.structs.replace(run, spec=service.spec), service)
    options = SubmitOptions(project=PROJECT, source=JobSource.ORCHESTRATOR, max_attempts=3)
    return {run.id: [planning],
            service.id: [ServiceClaimed(run_id=run.id)],
            plan_job_id: list(decide_submit(job, options))}  # fmt: skip


def plan_job(run: Run, service: Service) -> NormalizedJob:
    """The plan job: a task job whose two agent steps analyze and patch the service's
    repository on a branch of its own (the proposal), checked against `allowedPaths`."""
    spec = run.spec
    allowed = list(spec["allowedPaths"])
    check = service.last_check
    seen = ("The service's last verify " + ("passed" if check["passed"] else "FAILED") +
            f" (run {check['run_id']}), ending:\n```\n{redact_credentials(check['output'])}\n```"
            if check else "No verify has run on this service through Cairn yet.")  # fmt: skip
    commands = "\n".join(f"- {name}: `{_command_text(spec.get(name))}`"
                         for name in ("build", "restart", "verify"))  # fmt: skip
    logs = ("\nIts recent logs are in .cairn/service_logs.txt (from its logs command)."
            if spec.get("logs") else "")
    context = (
        f"Service: {service.name} ({spec.get('description') or 'no description'})\n"
        f"Repository: {spec['repository']}, branch {spec['branch']}\n"
        f"Files a change may touch (globs): {', '.join(allowed)}\n"
        f"After your change, the operator's commands run:\n{commands}\n\n{seen}{logs}"
    )
    analyze = (
        "Analyze only: find out what the instruction needs done to the service. Do NOT change, "
        "create or delete any file (a change here fails the run). End with your plan: what is "
        "wrong, which files you will change and why, and how the verify will show it works."
    )
    patch = (
        "Carry out the plan in .cairn/plan.md (from the analysis). Change only files matching "
        f"{', '.join(allowed)}: a change to any other file fails the run before anything is "
        "built. Do not commit, build, restart or deploy: Cairn does that with the operator's "
        "commands."
    )
    payload = {
        "repository": spec["repository"],
        "targetRuntime": run.runtime,
        "task": {
            "instructions": f"{run.instruction}\n\n{context}",
            "steps": [
                {"id": "analyze", "title": "Analyze", "instructions": analyze},
                {"id": "patch", "title": "Patch", "instructions": patch},
            ],
            "git": {"startingBranch": spec["branch"], "newBranch": PROPOSAL_PREFIX + run.id},
            "publish": {"mode": "branch", "commitMessage": f"Proposal of {run.id}: "
                        f"{_first_line(run.instruction)}",
                        "verificationSkipReason": {
                            "category": "other",
                            "reason": "an orchestrator run verifies with the service's own "
                                      "build, restart and verify after approval"}},
        },
    }  # fmt: skip
    # The service's repository was checked (with the deployment's rules) when it was defined.
    job = normalize_job("task", payload, ContractSettings(allow_local_repositories=True,
                                                          default_runtime=run.runtime))
    normalized = {**job.normalized, "orchestrator": {
        "run": run.id, "phase": "plan", "service": service.name, "allowedPaths": allowed,
        "logs": spec.get("logs"), "env": spec.get("env") or []}}  # fmt: skip
    needs = sorted({*job.required_capabilities, "orchestrator"})
    return NormalizedJob(job_type=job.job_type, submitted_type=job.submitted_type,
                         original=job.original, normalized=normalized,
                         required_capabilities=needs)  # fmt: skip


def apply_job(run: Run) -> NormalizedJob:
    """The apply job: the operator's commands on the service, with the proposal committed on
    its branch first (and reverted by the rollback)."""
    spec = run.spec
    normalized = {"orchestrator": {
        "run": run.id, "phase": "apply", "service": run.service, "spec": spec,
        "instruction": run.instruction, "proposal": run.proposal, "files": run.files,
        "approvedBy": run.approved_by, "submittedBy": run.submitted_by,
    }}  # fmt: skip
    return NormalizedJob(job_type="orchestrator", submitted_type="orchestrator",
                         original=normalized, normalized=normalized,
                         required_capabilities=capabilities_of(spec))  # fmt: skip


def _command_text(command: Any) -> str:
    if not isinstance(command, dict):
        return "(none)"
    if command.get("http"):
        http = command["http"]
        return f"GET {http['url']} expects {http.get('expectStatus', 200)}"
    return str(command.get("run", ""))


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:72]


# ---- decisions of people ------------------------------------------------------------------


def decide_approve(run: Run, actor: str, *, four_eyes: bool, apply_job_id: str,
                   now: datetime | None = None) -> Decision:  # fmt: skip
    _awaiting(run, "approved")
    if now is not None and expired(run, now):
        raise InvalidTransition(f"run {run.id}'s approval expired at {run.expires_at}; start a "
                                "new run", run_id=run.id, expires_at=run.expires_at)  # fmt: skip
    if four_eyes and actor == run.submitted_by:
        raise NotAllowed(f"{actor} submitted run {run.id}; with four eyes "
                         "(CAIRN_ORCHESTRATOR_FOUR_EYES) another operator approves it",
                         run_id=run.id, submitted_by=run.submitted_by)  # fmt: skip
    approved = evolve(run, RunApproved(actor=actor), run.id, run.version + 1, "")
    return {run.id: [RunApproved(actor=actor), *_apply(approved, apply_job_id)[run.id]],
            apply_job_id: _apply(approved, apply_job_id)[apply_job_id]}  # fmt: skip


def decide_reject(run: Run, service: Service, actor: str, reason: str, *, expired: bool = False,
                  next_start: Decision | None = None) -> Decision:  # fmt: skip
    _awaiting(run, "rejected")
    if not expired and not reason.strip():
        raise ValidationFailed("reason: say why the plan is rejected",
                               errors=[{"path": "reason", "reason": "required"}])  # fmt: skip
    said = "the approval expired with no decision" if expired else reason.strip()[:REASON_MAX]
    finished = RunFinished(state="failed", reason=f"rejected by {actor}: {said}"
                           if not expired else said)  # fmt: skip
    decision: Decision = {run.id: [RunRejected(actor=actor, reason=said, expired=expired),
                                   finished]}  # fmt: skip
    return merge(decision, _release(run, service), next_start or {})


def _awaiting(run: Run, what: str) -> None:
    if run.state != "awaiting_approval":
        raise InvalidTransition(f"run {run.id} is {run.state}; only a run awaiting approval can "
                                f"be {what}", run_id=run.id, state=run.state)  # fmt: skip


def _apply(run: Run, apply_job_id: str) -> Decision:
    options = SubmitOptions(project=PROJECT, source=JobSource.ORCHESTRATOR, max_attempts=3)
    return {run.id: [RunApplying(job_id=apply_job_id)],
            apply_job_id: list(decide_submit(apply_job(run), options))}  # fmt: skip


def approval_expires(now: datetime, timeout_s: float) -> str:
    return (now + timedelta(seconds=timeout_s)).astimezone(UTC).isoformat().replace("+00:00", "Z")


def expired(run: Run, now: datetime) -> bool:
    if run.state != "awaiting_approval" or run.expires_at is None:
        return False
    return datetime.fromisoformat(run.expires_at.replace("Z", "+00:00")) <= now


# ---- cancel -------------------------------------------------------------------------------


def decide_cancel(run: Run, service: Service, actor: str, *,
                  next_start: Decision | None = None) -> Decision:  # fmt: skip
    """A run with no job going ends at once; one whose job runs asks it to stop (the job's end
    ends the run: a cancel during `restart` or `verify` rolls back first)."""
    if run.final:
        raise InvalidTransition(f"run {run.id} is {run.state}; there is nothing to cancel",
                                run_id=run.id, state=run.state)  # fmt: skip
    if run.cancel_requested_by is not None:
        return {}
    asked: Decision = {run.id: [RunCancelRequested(actor=actor)]}
    if run.state == "awaiting_approval" or run.plan_job is None:
        finished = RunFinished(state="cancelled", reason=f"cancelled by {actor}")
        return merge({run.id: [RunCancelRequested(actor=actor), finished]},
                      _release(run, service), next_start or {})  # fmt: skip
    return asked


# ---- following its jobs -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Followed:
    """A job event's consequence for its run: the run's and the service's events, and, when
    the run ends, whether the next run in line starts (commands gives it its plan job)."""

    decision: Decision
    ended: bool = False


def follows(job: Job) -> str | None:
    """The run a job belongs to."""
    marker = job.normalized.get("orchestrator")
    return str(marker["run"]) if isinstance(marker, dict) and marker.get("run") else None


def decide_on_job(run: Run, service: Service, job: Job, events: list[JobEvent], *,
                  apply_job_id: str, now: datetime) -> Followed:  # fmt: skip
    """What the run makes of its job's new events (`job`: the job after them)."""
    if run.final or job.id not in run.jobs:
        return Followed({})
    terminal = job.status in ("succeeded", "failed", "dead_letter", "cancelled")
    if job.id == run.apply_job and not terminal:
        verifying = any(isinstance(e, JobStepStarted) and e.step_id == "verify" for e in events)
        return Followed({run.id: [RunVerifying()]} if verifying and run.state == "applying"
                        else {})  # fmt: skip
    if not terminal or (job.id == run.plan_job and run.planned):
        return Followed({})
    if job.id == run.plan_job:
        return _planned(run, service, job, apply_job_id=apply_job_id, now=now)
    return _applied(run, service, job)


def _planned(run: Run, service: Service, job: Job, *, apply_job_id: str, now: datetime
             ) -> Followed:  # fmt: skip
    if job.status == "cancelled":
        return _end(run, service, RunFinished(state="cancelled", reason=_cancelled_by(run, job)))
    if job.status != "succeeded":
        error = (job.outcome or {}).get("error") or {}
        files = list(error.get("files") or [])
        reason = str(error.get("message") or _text((job.outcome or {}).get("reason"))
                     or f"the plan job {job.status}")  # fmt: skip
        return _end(run, service, RunFinished(state="failed", reason=f"planning failed: {reason}",
                                              files=files))  # fmt: skip
    planned = RunPlanned(files=_files(job), patch=_artifact(job, "changes.patch"),
                         plan=_artifact(job, "plan.md"), proposal=_proposal(job),
                         redacted=_said(job, "redacted"))  # fmt: skip
    after = evolve(run, planned, run.id, run.version + 1, "")
    if run.cancel_requested_by is not None:
        return _end(after, service, RunFinished(state="cancelled", reason=_cancelled_by(run, job)),
                    first=[planned])  # fmt: skip
    if after.needs_approval:
        expires = approval_expires(now, run.approval_timeout_s)
        return Followed({run.id: [planned, RunApprovalRequested(expires_at=expires)]})
    applying = _apply(after, apply_job_id)
    return Followed({run.id: [planned, *applying[run.id]],
                     apply_job_id: applying[apply_job_id]})  # fmt: skip


def _applied(run: Run, service: Service, job: Job) -> Followed:
    # What the worker said: its stages' details, a failed stage's error, the outcome's error.
    detail: dict[str, Any] = {}
    error = (job.outcome or {}).get("error") or {}
    for stage in job.stages or []:
        found: dict[str, Any] = stage.get("detail") or {}
        detail.update(found)
        nested = found.get("error")
        detail.update(nested if isinstance(nested, dict) else {})
    detail.update(error if isinstance(error, dict) else {})
    commit, check, code = detail.get("commit"), detail.get("verify"), str(detail.get("code") or "")
    said = "rolled_back" in detail  # the worker's own end (it says whether it rolled back)
    if job.status == "succeeded":
        finished = RunFinished(state="succeeded", reason="verify passed after the restart",
                               commit=commit)  # fmt: skip
    elif code == "rollback_failed":
        finished = RunFinished(state="rollback_failed", reason=str(detail.get("message") or code),
                               commit=commit)  # fmt: skip
    elif job.status == "cancelled" and (said or job.attempt == 0):
        rolled = bool(detail.get("rolled_back"))
        why = _cancelled_by(run, job) + (" (rolled back)" if rolled else "")
        finished = RunFinished(state="cancelled", reason=why, rolled_back=rolled, commit=commit)
    elif job.status in ("cancelled", "dead_letter") or (job.status == "failed" and not code):
        # It ended with no worker to roll back after it ran: the change may be on the branch
        # and the service half restarted. A person looks.
        finished = RunFinished(state="rollback_failed", commit=commit, reason=(
            f"the apply job {job.status.replace('_', '-')} after {job.attempt} attempt(s) with "
            "no worker to roll back: the service's branch may hold this run's commit (trailer "
            f"Cairn-Run: {run.id}) and the service may be half restarted; check it"))  # fmt: skip
    else:
        state = code if code == "rolled_back" else "failed"
        reason = str(detail.get("message") or f"the apply job {job.status}")
        finished = RunFinished(state=state, reason=reason, rolled_back=state == "rolled_back",
                               commit=commit)  # fmt: skip
    checked: list[ServiceEvent] = []
    if isinstance(check, dict):
        checked = [ServiceChecked(run_id=run.id, passed=bool(check.get("passed")),
                                  output=last_output(str(check.get("output") or "")))]  # fmt: skip
    followed = _end(run, service, finished)
    decision = dict(followed.decision)
    decision[service.id] = [*checked, *decision.get(service.id, [])]
    return Followed(decision, ended=True)


def _end(run: Run, service: Service, finished: RunFinished, first: list[RunEvent] | None = None
         ) -> Followed:  # fmt: skip
    return Followed(merge({run.id: [*(first or []), finished]}, _release(run, service)),
                    ended=True)  # fmt: skip


def _release(run: Run, service: Service) -> Decision:
    if service.holder != run.id and run.id not in service.waiting:
        return {}
    return {service.id: [ServiceReleased(run_id=run.id)]}


def start_next(service: Service, ended: str, line: Sequence[Run] | Run | None,
               plan_job_id: str) -> Decision:  # fmt: skip
    """When `ended` lets go of the service, the first run in `line` (the waiting runs, in
    order) that can start takes it; one that cannot (the service's definition changed under
    it) fails, and the next is tried."""
    waiting = [line] if isinstance(line, Run) else list(line or [])
    if not waiting or service.holder not in (None, ended):
        return {}
    decision: Decision = {}
    for run in waiting:
        try:
            return merge(decision, _start(run, service, plan_job_id))
        except ValidationFailed as e:
            failed = RunFinished(state="failed", reason=f"it could not start: {e.message}")
            decision = merge(decision, {run.id: [failed],
                                         service.id: [ServiceReleased(run_id=run.id)]})  # fmt: skip
    return decision


def next_in_line(service: Service, ended: str) -> list[str]:
    """The runs waiting for the service, in order, but `ended`."""
    return [r for r in service.waiting if r != ended]


def merge(*decisions: Decision) -> Decision:
    merged: Decision = {}
    for decision in decisions:
        for aggregate, events in decision.items():
            merged[aggregate] = [*merged.get(aggregate, []), *events]
    return merged


def _text(reason: Any) -> str:
    if isinstance(reason, dict):
        return str(reason.get("message") or reason.get("code") or "")
    return str(reason or "")


def _cancelled_by(run: Run, job: Job) -> str:
    who = run.cancel_requested_by
    return f"cancelled by {who}" if who else f"cancelled ({job.cancel_reason or 'its job was'})"


def _said(job: Job, key: str) -> bool:
    return any(bool((stage.get("detail") or {}).get(key)) for stage in job.stages or []
               if stage.get("attempt", job.attempt) == job.attempt)  # fmt: skip


def _files(job: Job) -> list[str]:
    for stage in job.stages or []:
        files = (stage.get("detail") or {}).get("changed")
        if isinstance(files, list):
            return [str(f) for f in files]
    return []


def _artifact(job: Job, path: str) -> str | None:
    for artifact in reversed(job.artifacts or []):
        stored = str(artifact.get("path") or "")
        same = artifact.get("name") == path or stored == path or stored.endswith(f"/{path}")
        if same and artifact.get("attempt", job.attempt) == job.attempt:
            return str(artifact.get("ref"))
    return None


def _proposal(job: Job) -> dict[str, Any] | None:
    published = job.publish or {}
    if not published.get("commit"):
        return None
    base = next((str((s.get("detail") or {}).get("head")) for s in job.stages or []
                 if s.get("stage") == "prepare" and (s.get("detail") or {}).get("head")), None)
    return {"branch": published.get("branch"), "base": base, "head": published.get("commit")}
