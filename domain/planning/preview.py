"""What a PRD import asks for, and its preview: the tasks, edges, roots, waves and warnings
of a plan, and what committing it would change against the document's last import."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from cairn.domain.errors import ValidationFailed
from cairn.domain.limits import MAX_DESCRIPTION
from cairn.domain.planning.import_events import ImportedTask
from cairn.domain.planning.plan_graph import Graph, PlanTask, parse_agent_plan, settle_graph
from cairn.domain.planning.planner import plan_document
from cairn.domain.tasks.spec import VISIBLE, Name, Spec

MAX_PRD_CHARS = 200_000
# Patterns spell ASCII out: JSON Schema's \w is ASCII, Python's is not (so the schema and the
# server would disagree on "Pò").
DocumentName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ .:/\-]*$")
]
DEFAULT_DOCUMENT = "prd"


ONE_OF_SOURCE_OR_PLAN: dict[str, Any] = {
    "anyOf": [
        {"required": ["source"], "properties": {"source": {"minLength": 1, "pattern": VISIBLE}}},
        {"required": ["plan"], "properties": {"plan": {"type": "object"}}},
    ]
}


class ImportRequest(BaseModel):
    """A PRD import: the document and how to plan it. `plan` is a plan already made (an
    agent's `.cairn/plan.json`), in place of `source`."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=ONE_OF_SOURCE_OR_PLAN)
    project: Name = "default"
    document: DocumentName | None = Field(
        default=None, description="the PRD's identity in the project, so a re-import updates "
        "its tasks (default: its title)",
    )  # fmt: skip
    source: str = Field(default="", max_length=MAX_PRD_CHARS, description="the PRD, markdown")
    plan: dict[str, Any] | None = Field(
        default=None,
        description="a plan made elsewhere (.cairn/plan.json's shape) instead of `source`",
    )
    granularity: Literal["coarse", "balanced", "fine"] = "balanced"
    auto_ready: StrictBool = False
    max_parallelism_hint: int = Field(default=4, ge=1, le=100)
    cancel_removed: StrictBool = False
    labels: list[Name] = Field(default_factory=list, max_length=50)
    spec: Spec = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    task_id: str
    changes: dict[str, dict[str, Any]]  # field -> {from, to}


@dataclass(frozen=True, slots=True)
class Diff:
    added: list[str]
    updated: list[Change]
    unchanged: list[str]
    removed: list[ImportedTask]

    def view(self, revision: int, import_id: str | None) -> dict[str, Any]:
        return {
            "import_id": import_id, "base_revision": revision, "added": self.added,
            "updated": [{"key": c.key, "task_id": c.task_id, "changes": c.changes}
                        for c in self.updated],
            "unchanged": self.unchanged,
            "removed": [{"key": t.key, "task_id": t.task_id, "title": t.title}
                        for t in self.removed],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Plan:
    """A request planned: the settled graph, with what the planner skipped and warned."""

    document: str
    graph: Graph
    warnings: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    planner: str


def shows_something(source: str) -> bool:
    """A source with a visible character, as the schema's anyOf says (control characters and
    blanks alone are an empty PRD)."""
    return _SHOWN.search(source) is not None


_SHOWN = re.compile(VISIBLE)


def plan_request(request: ImportRequest) -> Plan:
    """The request's tasks and edges: planned from `source`, or checked from `plan` (an agent
    plan's cycle is refused, naming the edge; a document's is broken with a warning)."""
    if request.plan is not None:
        if request.source:
            reason = "give either source (to plan) or plan (already planned), not both"
            raise ValidationFailed(reason, [{"path": "plan", "reason": reason}])
        tasks = parse_agent_plan(request.plan)
        graph = settle_graph(tasks, request.max_parallelism_hint, break_cycles=False)
        return Plan(request.document or DEFAULT_DOCUMENT, graph, [], [], "agent")
    if not shows_something(request.source):
        reason = "the PRD is empty: send its markdown as source"
        raise ValidationFailed(reason, [{"path": "source", "reason": reason}])
    planned = plan_document(request.source, request.granularity)
    if not planned.tasks:
        reason = "no task found: the PRD has no section or item with work in it"
        raise ValidationFailed(reason, [{"path": "source", "reason": reason}])
    graph = settle_graph([_bounded(t) for t in planned.tasks], request.max_parallelism_hint,
                         break_cycles=True)  # fmt: skip
    document = request.document or _slug(planned.title) or DEFAULT_DOCUMENT
    return Plan(document, graph, [*planned.warnings, *graph.warnings], planned.skipped,
                "deterministic")  # fmt: skip


def _bounded(task: PlanTask) -> PlanTask:
    """A planned task within a task's field limits (a long section is cut, saying so)."""
    description = task.description
    if len(description) > MAX_DESCRIPTION:
        description = description[: MAX_DESCRIPTION - 40] + "\n\n[cut: the section is longer]"
    criteria = tuple(c[:2000] for c in task.acceptance_criteria)[:200]
    return PlanTask(task.key, task.title[:300], description, criteria, task.task_type,
                    task.priority, task.depends_on)  # fmt: skip


def _slug(title: str) -> str:
    return re.sub(r"[^\w]+", "-", title.lower()).strip("-_")[:100]


def request_digest(request: ImportRequest, base_revision: int) -> str:
    """The preview's identity: the request's content and the revision it was compared with,
    so a commit of a stale preview is told apart."""
    body = json.dumps(request.model_dump(mode="json"), sort_keys=True) + f"\0{base_revision}"
    return hashlib.blake2b(body.encode(), digest_size=13).hexdigest()


def source_digest(request: ImportRequest) -> str:
    content = request.source or json.dumps(request.plan, sort_keys=True)
    return hashlib.sha256(content.encode()).hexdigest()


def diff(previous: dict[str, ImportedTask], graph: Graph, task_ids: dict[str, str]) -> Diff:
    """What committing `graph` changes against the tasks the document's last import wrote
    (a key that returns after being removed counts as updated)."""
    added, updated, unchanged = [], [], []
    for task in graph.tasks:
        before = previous.get(task.key)
        if before is None:
            added.append(task.key)
            continue
        changes = {
            name: {"from": old, "to": new} for name, old, new in _fields(before, task) if old != new
        }
        if before.removed:
            changes["removed"] = {"from": True, "to": False}
        if changes:
            updated.append(Change(task.key, task_ids.get(task.key, before.task_id), changes))
        else:
            unchanged.append(task.key)
    keys = {t.key for t in graph.tasks}
    removed = [t for k, t in previous.items() if k not in keys and not t.removed]
    return Diff(added, updated, unchanged, removed)


def _fields(before: ImportedTask, task: PlanTask) -> list[tuple[str, Any, Any]]:
    return [
        ("title", before.title, task.title),
        ("description", before.description, task.description),
        ("acceptance_criteria", before.acceptance_criteria, list(task.acceptance_criteria)),
        ("task_type", before.task_type, task.task_type),
        ("priority", before.priority, task.priority),
        ("depends_on", before.depends_on, list(task.depends_on)),
    ]


def preview_view(request: ImportRequest, plan: Plan, changes: Diff, preview_id: str,
                 revision: int, import_id: str) -> dict[str, Any]:  # fmt: skip
    """The preview as the API and the CLI show it."""
    graph = plan.graph
    wave_of = {k: i for i, wave in enumerate(graph.waves) for k in wave}
    tasks = [
        {"key": t.key, "title": t.title, "description": t.description,
         "acceptance_criteria": list(t.acceptance_criteria), "task_type": t.task_type,
         "priority": t.priority, "depends_on": list(t.depends_on), "wave": wave_of[t.key]}
        for t in graph.tasks
    ]  # fmt: skip
    return {
        "preview_id": preview_id, "import_id": import_id, "project": request.project,
        "document": plan.document, "planner": plan.planner, "granularity": request.granularity,
        "auto_ready": request.auto_ready, "max_parallelism_hint": request.max_parallelism_hint,
        "tasks": tasks, "edges": graph.edges, "roots": graph.roots,
        "blocked_roots": graph.blocked_roots, "waves": graph.waves, "warnings": plan.warnings,
        "skipped": plan.skipped, "diff": changes.view(revision, import_id if revision else None),
        "counts": {"tasks": len(tasks), "edges": len(graph.edges), "waves": len(graph.waves)},
    }  # fmt: skip
