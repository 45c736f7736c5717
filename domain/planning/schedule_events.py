"""Schedule events: a recurring job's schedule and each time it fired, as facts in the past
tense. Never edit one once written; add an upcaster."""

from __future__ import annotations

from typing import Any, ClassVar

from cairn.domain.events import Event
from cairn.domain.upcast import Upcaster, decode_event


class ScheduleEvent(Event, frozen=True, kw_only=True, omit_defaults=True):
    pass


class ScheduleCreated(ScheduleEvent, frozen=True, kw_only=True, omit_defaults=True):
    """`job` ({type, payload, priority, max_attempts}) is what each fire submits; with a
    `template`, the template's steps (expanded with `inputs`) are the job's steps."""

    TYPE: ClassVar[str] = "schedule.created"
    project: str
    name: str
    cron: str
    timezone: str = "UTC"
    job: dict[str, Any] | None = None
    template: str | None = None
    template_version: int | None = None
    inputs: dict[str, Any] = {}
    enabled: bool = True


class SchedulePaused(ScheduleEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "schedule.paused"


class ScheduleResumed(ScheduleEvent, frozen=True, kw_only=True, omit_defaults=True):
    """Fires missed while paused are not made up: the next is the first after this."""

    TYPE: ClassVar[str] = "schedule.resumed"


class ScheduleDeleted(ScheduleEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "schedule.deleted"


class ScheduleFired(ScheduleEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A fire time (UTC, ISO 8601) made its job; `manual` for a run now, which leaves the
    cron's own fires as they were."""

    TYPE: ClassVar[str] = "schedule.fired"
    fire_time: str
    job_id: str
    manual: bool = False


class ScheduleFireFailed(ScheduleEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A fire time made no job (its template no longer fits, say): recorded, so it is not
    tried again every round, with why."""

    TYPE: ClassVar[str] = "schedule.fire_failed"
    fire_time: str
    reason: str
    errors: list[dict[str, str]] = []
    manual: bool = False


SCHEDULE_EVENTS: dict[str, type[ScheduleEvent]] = {
    cls.TYPE: cls
    for cls in (ScheduleCreated, SchedulePaused, ScheduleResumed, ScheduleDeleted, ScheduleFired,
                ScheduleFireFailed)
}  # fmt: skip
SCHEDULE_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def schedule_event_from(type_: str, schema: int, data: dict[str, Any]) -> ScheduleEvent:
    """A schedule event from its envelope's type, schema and data (upcast to the current)."""
    return decode_event(SCHEDULE_EVENTS, SCHEDULE_UPCASTERS, type_, schema, data)
