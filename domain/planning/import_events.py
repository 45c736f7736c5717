"""ImportJob events: one PRD document's imports into one project, as facts in the past tense.
Never edit one once written; add an upcaster."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from cairn.domain.events import Event
from cairn.domain.upcast import Upcaster, decode_event


class ImportEvent(Event, frozen=True, kw_only=True, omit_defaults=True):
    pass


class ImportedTask(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A planned task as the import last wrote it (what the next re-import is compared with);
    `removed` once a later revision no longer has its key."""

    key: str
    task_id: str
    title: str
    description: str = ""
    acceptance_criteria: list[str] = []
    task_type: str = "feature"
    priority: int = 1
    depends_on: list[str] = []  # keys
    removed: bool = False


class ImportCommitted(ImportEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A revision of the document was committed: `tasks` is every key it has now (and the
    removed ones), `order` the task ids in wave order, for auto_ready."""

    TYPE: ClassVar[str] = "import.committed"
    project: str
    document: str
    revision: int
    granularity: str
    planner: str
    auto_ready: bool = False
    max_parallelism_hint: int = 4
    source_sha256: str = ""
    preview_id: str = ""
    tasks: list[ImportedTask] = []
    order: list[str] = []
    added: list[str] = []
    updated: list[str] = []
    removed: list[str] = []
    cancelled: list[str] = []
    edge_count: int = 0
    warnings: list[dict[str, Any]] = []


class ImportTasksReleased(ImportEvent, frozen=True, kw_only=True, omit_defaults=True):
    """auto_ready moved `task_ids` to ready; `moved_by_others` had left backlog by other
    hands and are no longer the import's to release."""

    TYPE: ClassVar[str] = "import.tasks_released"
    task_ids: list[str] = []
    moved_by_others: list[str] = []


class ImportPlanRequested(ImportEvent, frozen=True, kw_only=True, omit_defaults=True):
    """An agent planner's job was queued to plan the document."""

    TYPE: ClassVar[str] = "import.plan_requested"
    project: str
    document: str
    job_id: str
    request: dict[str, Any] = {}


class ImportPlanned(ImportEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "import.planned"
    job_id: str
    preview_id: str
    plan: dict[str, Any]


class ImportPlanFailed(ImportEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "import.plan_failed"
    job_id: str
    reason: str
    errors: list[dict[str, str]] = []


IMPORT_EVENTS: dict[str, type[ImportEvent]] = {
    cls.TYPE: cls
    for cls in (ImportCommitted, ImportTasksReleased, ImportPlanRequested, ImportPlanned,
                ImportPlanFailed)
}  # fmt: skip
IMPORT_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def import_event_from(type_: str, schema: int, data: dict[str, Any]) -> ImportEvent:
    """An import event from its envelope's type, schema and data (upcast to the current)."""
    return decode_event(IMPORT_EVENTS, IMPORT_UPCASTERS, type_, schema, data)
