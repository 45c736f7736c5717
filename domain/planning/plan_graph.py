"""A planned task graph, whoever planned it (the deterministic planner or an agent's
`.cairn/plan.json`): checked, made acyclic, and laid out in waves no wider than the hint."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cairn.domain.errors import ValidationFailed
from cairn.domain.tasks.graph import find_cycle, waves
from cairn.domain.tasks.spec import Item, Priority, TaskType, Text, Title, parse_model

MAX_IMPORT_TASKS = 500
Key = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/~]*$")]


@dataclass(frozen=True, slots=True)
class PlanTask:
    """One task of a plan; `key` is its identity across re-imports of the same document."""

    key: str
    title: str
    description: str = ""
    acceptance_criteria: tuple[str, ...] = ()
    task_type: str = "feature"
    priority: int = 1
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Graph:
    tasks: list[PlanTask]  # in wave order
    waves: list[list[str]]
    roots: list[str]
    blocked_roots: list[dict[str, Any]]
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def edges(self) -> list[dict[str, str]]:
        return [{"task": t.key, "blocked_by": b} for t in self.tasks for b in t.depends_on]


class AgentTask(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)
    key: Key
    title: Title
    description: Text = ""
    acceptance_criteria: list[Item] = Field(default_factory=list, max_length=200)
    task_type: TaskType = TaskType.FEATURE
    priority: Priority = 1
    depends_on: list[Key] = Field(default_factory=list, max_length=200)


class AgentPlan(BaseModel):
    """What an agent planner writes to `.cairn/plan.json`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tasks: list[AgentTask] = Field(min_length=1, max_length=MAX_IMPORT_TASKS)


def parse_agent_plan(data: Any, root: str = "plan") -> list[PlanTask]:
    """An agent's plan as plan tasks; every fault (shape, duplicate keys, references to no
    task) is refused naming its path, as a person's input is."""
    plan = parse_model(AgentPlan, data, root=root)
    keys = [t.key for t in plan.tasks]
    errors = [
        {"path": f"{root}.tasks[{i}].key", "reason": f"duplicate key {k!r}"}
        for i, k in enumerate(keys) if k in keys[:i]
    ]  # fmt: skip
    errors += [
        {"path": f"{root}.tasks[{i}].depends_on[{j}]", "reason": f"{d!r} is not a key of the plan"}
        for i, t in enumerate(plan.tasks) for j, d in enumerate(t.depends_on) if d not in keys
    ]  # fmt: skip
    if errors:
        raise ValidationFailed(f"{len(errors)} fault(s) in the plan", errors)
    return [
        PlanTask(t.key, t.title, t.description, tuple(t.acceptance_criteria), t.task_type.value,
                 t.priority, tuple(dict.fromkeys(d for d in t.depends_on if d != t.key)))
        for t in plan.tasks
    ]  # fmt: skip


def settle_graph(
    tasks: list[PlanTask], hint: int, *, break_cycles: bool, root: str = "plan"
) -> Graph:
    """The plan as a graph: a cycle is broken at its backward edge (an item depending on one
    written after it), with a warning saying which; or, if not `break_cycles`, refused naming
    the edge. Waves are topological levels cut to at most `hint` tasks each."""
    if len(tasks) > MAX_IMPORT_TASKS:
        reason = (f"the plan has {len(tasks)} tasks; at most {MAX_IMPORT_TASKS} are imported at "
                  "once (use a coarser granularity or split the document)")  # fmt: skip
        raise ValidationFailed(reason, [{"path": "source", "reason": reason}])
    order = {t.key: i for i, t in enumerate(tasks)}
    depends = {t.key: [d for d in t.depends_on if d in order] for t in tasks}
    warnings: list[dict[str, Any]] = []
    while cycle := find_cycle(depends):
        pairs = list(itertools.pairwise(cycle))
        task, blocker = max(pairs, key=lambda p: order[p[1]] - order[p[0]])
        if not break_cycles:
            i = order[task]
            j = depends[task].index(blocker)
            reason = "closes a cycle: " + " -> ".join(cycle)
            raise ValidationFailed(f"the plan's graph has a cycle: {' -> '.join(cycle)}",
                                   [{"path": f"{root}.tasks[{i}].depends_on[{j}]",
                                     "reason": reason}])  # fmt: skip
        depends[task].remove(blocker)
        warnings.append({
            "code": "cycle_broken", "cycle": cycle,
            "dropped": {"task": task, "blocked_by": blocker},
            "message": f"cycle {' -> '.join(cycle)} broken by dropping '{task} depends on "
            f"{blocker}' (it depends on an item written after it)",
        })  # fmt: skip
    levels = waves(depends)
    by_key = {t.key: t for t in tasks}
    laid: list[list[str]] = []
    for level in levels:
        level.sort(key=lambda k: (-by_key[k].priority, order[k]))
        laid += [level[i : i + hint] for i in range(0, len(level), hint)]
    settled = [
        PlanTask(t.key, t.title, t.description, t.acceptance_criteria, t.task_type, t.priority,
                 tuple(depends[t.key]))
        for wave in laid for t in (by_key[k] for k in wave)
    ]  # fmt: skip
    return Graph(settled, laid, [t.key for t in settled if not t.depends_on],
                 _blocked_roots(settled), warnings)  # fmt: skip


def _blocked_roots(tasks: list[PlanTask]) -> list[dict[str, Any]]:
    """Each root that holds others back, with every task waiting on it (transitively)."""
    dependents: dict[str, list[str]] = {}
    for t in tasks:
        for b in t.depends_on:
            dependents.setdefault(b, []).append(t.key)
    found = []
    for t in tasks:
        if t.depends_on or t.key not in dependents:
            continue
        seen: dict[str, None] = {}
        stack = list(dependents[t.key])
        while stack:
            k = stack.pop(0)
            if k not in seen:
                seen[k] = None
                stack += dependents.get(k, [])
        found.append({"key": t.key, "blocks": list(seen)})
    return found
