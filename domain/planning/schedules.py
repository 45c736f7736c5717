"""The Schedule aggregate as a decider: a job (or a template's steps) submitted at each time a
cron expression names, in a time zone. A fire time makes exactly one job: the schedule records
each fire with its time, and a time at or before the last one fired decides nothing. Fires
missed while nothing ran are not made up one by one: the latest missed one runs, once."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from cairn.domain.decision import Decision
from cairn.domain.errors import CairnError, CorruptStream, InvalidTransition, ValidationFailed
from cairn.domain.jobs.job import JobSource, SubmitOptions, decide_submit
from cairn.domain.jobs.kinds import NormalizedJob
from cairn.domain.limits import MAX_PAYLOAD_BYTES, MAX_REASON
from cairn.domain.planning.cron import (
    CRON_PATTERN,
    cron_fault,
    latest_by,
    next_after,
    timezone_fault,
)
from cairn.domain.planning.schedule_events import (
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleEvent,
    ScheduleFired,
    ScheduleFireFailed,
    SchedulePaused,
    ScheduleResumed,
)
from cairn.domain.planning.template_inputs import expand
from cairn.domain.planning.templates import Slug, TemplateVersion
from cairn.domain.tasks.spec import Name, Priority, Title

KEPT_FIRES = 20  # a schedule's document keeps its latest fires


def _checked(fault: Any) -> Any:
    def check(value: str) -> str:
        reason = fault(value)
        if reason:
            raise ValueError(reason)
        return value

    return AfterValidator(check)


def _payload_size(value: dict[str, Any]) -> dict[str, Any]:
    size = len(msgspec.json.encode(value))
    if size > MAX_PAYLOAD_BYTES:
        raise ValueError(f"is {size} bytes as JSON; at most {MAX_PAYLOAD_BYTES} are accepted")
    return value


CRON_SHAPE = Field(min_length=1, max_length=200, json_schema_extra={"pattern": CRON_PATTERN})
Cron = Annotated[str, CRON_SHAPE, _checked(cron_fault)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64), _checked(timezone_fault)]


class ScheduledJob(BaseModel):
    """What each fire submits to the queue (as POST /api/queue/jobs takes it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str = Field(default="task", min_length=1, max_length=64)
    payload: Annotated[dict[str, Any], AfterValidator(_payload_size)] = Field(
        default_factory=dict)  # fmt: skip
    priority: Priority = 0
    max_attempts: int = Field(default=3, ge=1, le=50)


class ScheduleInput(BaseModel):
    """A schedule as a person posts it: a `job`, or a `template` with its `inputs` (and then
    `job`, if given, is the task job the steps go into: its repository, runtime, publish)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)
    project: Name = "default"
    name: Title
    cron: Cron = Field(description="five fields, six with seconds first, or @daily and the like")
    timezone: TimeZone = "UTC"
    job: ScheduledJob | None = None
    template: Slug | None = None
    template_version: int | None = Field(default=None, ge=1, le=1_000_000)
    inputs: dict[str, Any] = Field(default_factory=dict, description="the template's inputs")
    enabled: bool = True


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    project: str
    name: str
    cron: str
    timezone: str
    status: str  # active, paused, deleted
    job: dict[str, Any] | None = None
    template: str | None = None
    template_version: int | None = None
    inputs: dict[str, Any] = {}
    since: str = ""  # created or resumed: fires before this are not made up
    last_fire_time: str | None = None  # the cron's last fire (made a job or failed)
    fires: list[dict[str, Any]] = []  # the latest, newest last
    fire_count: int = 0
    created_at: str = ""
    updated_at: str = ""


def evolve(state: Schedule | None, event: ScheduleEvent, aggregate_id: str, version: int,
           ts: str) -> Schedule:  # fmt: skip
    expected = 1 if state is None else state.version + 1
    if version != expected or (state is None) != isinstance(event, ScheduleCreated):
        raise CorruptStream(f"schedule {aggregate_id}: {event.TYPE} at version {version} "
                            f"(expected {expected}); the stream is corrupt",
                            aggregate_id=aggregate_id)  # fmt: skip
    replace = msgspec.structs.replace
    match event:
        case ScheduleCreated():
            s = Schedule(
                id=aggregate_id, version=0, project=event.project, name=event.name,
                cron=event.cron, timezone=event.timezone, job=event.job, template=event.template,
                template_version=event.template_version, inputs=event.inputs,
                status="active" if event.enabled else "paused", since=ts, created_at=ts,
            )  # fmt: skip
        case SchedulePaused() if state is not None:
            s = replace(state, status="paused")
        case ScheduleResumed() if state is not None:
            s = replace(state, status="active", since=ts)
        case ScheduleDeleted() if state is not None:
            s = replace(state, status="deleted")
        case ScheduleFired() | ScheduleFireFailed() if state is not None:
            fire: dict[str, Any] = {"fire_time": event.fire_time, "manual": event.manual}
            if isinstance(event, ScheduleFired):
                fire["job_id"] = event.job_id
            else:
                fire["error"] = {"reason": event.reason, "errors": event.errors}
            last = state.last_fire_time if event.manual else event.fire_time
            s = replace(state, last_fire_time=last, fires=[*state.fires, fire][-KEPT_FIRES:],
                        fire_count=state.fire_count + 1)  # fmt: skip
        case _:
            raise TypeError(f"not a schedule event: {event!r}")
    return replace(s, version=version, updated_at=ts)


# ---- when it fires --------------------------------------------------------------------------


def moment(text: str) -> datetime:
    """An RFC 3339 time as an aware datetime in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC)


def fire_text(at: datetime) -> str:
    """A fire time as events and job ids carry it (UTC, to the second)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _baseline(s: Schedule) -> datetime:
    since = moment(s.since)
    return max(since, moment(s.last_fire_time)) if s.last_fire_time else since


def next_fire(s: Schedule) -> datetime | None:
    """When an active schedule fires next (None when paused or deleted)."""
    if s.status != "active":
        return None
    return next_after(s.cron, s.timezone, _baseline(s))


def due_fire(s: Schedule, now: datetime) -> datetime | None:
    """The fire time to run at `now`: the latest the cron names by now, if it is after the
    last fire (and the schedule's start); every earlier missed one is passed over."""
    if s.status != "active":
        return None
    latest = latest_by(s.cron, s.timezone, now)
    return latest if latest > _baseline(s) else None


# ---- deciding -------------------------------------------------------------------------------


def check_input(given: ScheduleInput) -> None:
    """A job, or a template (whose steps make a task job); inputs only for a template."""
    errors: list[dict[str, str]] = []
    if given.job is None and given.template is None:
        errors.append({"path": "job", "reason": "send a job, or a template with its inputs"})
    if given.template is None and (given.inputs or given.template_version is not None):
        which = "inputs" if given.inputs else "template_version"
        errors.append({"path": which, "reason": "only with a template"})
    if given.template is not None and given.job is not None and given.job.type != "task":
        errors.append({"path": "job.type", "reason": "a template's steps make a task job; "
                                                     "leave type out or send task"})  # fmt: skip
    if errors:
        raise ValidationFailed(f"{errors[0]['path']}: {errors[0]['reason']}", errors)


def fire_request(s: Schedule | ScheduleInput, template: TemplateVersion | None) -> tuple[str, Any]:
    """The job type and payload a fire submits: the job as given, or a task job whose steps
    are the template's, expanded with the schedule's inputs (faults at `inputs.<name>`)."""
    job = s.job.model_dump() if isinstance(s.job, ScheduledJob) else s.job
    if template is None:
        if job is None:
            raise ValidationFailed("the schedule has no job", [{"path": "job",
                                                                "reason": "required"}])  # fmt: skip
        return str(job["type"]), copy.deepcopy(job["payload"])
    payload: dict[str, Any] = copy.deepcopy(job["payload"]) if job else {}
    body = dict(payload.get("task") or {})
    body["steps"] = expand(template.inputs, template.steps, s.inputs)
    objective = "\n\n".join(p for p in (template.title, template.description) if p)
    body.setdefault("instructions", objective)
    return "task", {**payload, "task": body}


def decide_create(schedule_id: str, given: ScheduleInput) -> Decision:
    check_input(given)
    return {schedule_id: [ScheduleCreated(
        project=given.project, name=given.name, cron=" ".join(given.cron.split()),
        timezone=given.timezone, job=given.job.model_dump(mode="json") if given.job else None,
        template=given.template, template_version=given.template_version, inputs=given.inputs,
        enabled=given.enabled,
    )]}  # fmt: skip


def decide_fire(
    s: Schedule, fire_time: datetime, job_id: str, job: NormalizedJob | None,
    error: CairnError | None = None, *, manual: bool = False,
) -> Decision:  # fmt: skip
    """The fire at `fire_time`: its job submitted (or why none could be) and the fire recorded,
    together. A cron fire at or before the last one, or of a schedule not active, decides
    nothing; a run now (`manual`) fires any schedule not deleted."""
    if s.status == "deleted":
        if manual:
            raise InvalidTransition(f"schedule {s.id} is deleted; it runs no more",
                                    status=s.status)  # fmt: skip
        return {}
    if not manual and (s.status != "active" or fire_time <= _baseline(s)):
        return {}
    if any(f.get("job_id") == job_id for f in s.fires):  # a run now sent again
        return {}
    at = fire_text(fire_time)
    if job is None:
        reason = error.message if error else "no job"
        errors = list((error.details.get("errors") if error else None) or [])
        return {s.id: [ScheduleFireFailed(fire_time=at, reason=reason[:MAX_REASON], errors=errors,
                                          manual=manual)]}  # fmt: skip
    options = SubmitOptions(project=s.project, source=JobSource.SCHEDULE,
                            priority=int((s.job or {}).get("priority", 0)),
                            max_attempts=int((s.job or {}).get("max_attempts", 3)))  # fmt: skip
    return {s.id: [ScheduleFired(fire_time=at, job_id=job_id, manual=manual)],
            job_id: [*decide_submit(job, options)]}  # fmt: skip


def decide_pause(s: Schedule) -> Decision:
    if s.status == "paused":
        return {}
    _alive(s, "paused")
    return {s.id: [SchedulePaused()]}


def decide_resume(s: Schedule) -> Decision:
    if s.status == "active":
        return {}
    _alive(s, "resumed")
    return {s.id: [ScheduleResumed()]}


def decide_delete(s: Schedule) -> Decision:
    return {} if s.status == "deleted" else {s.id: [ScheduleDeleted()]}


def _alive(s: Schedule, verb: str) -> None:
    if s.status == "deleted":
        raise InvalidTransition(f"schedule {s.id} is deleted; it cannot be {verb}",
                                status=s.status)  # fmt: skip
