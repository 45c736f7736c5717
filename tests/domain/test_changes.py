"""task.updated and job.updated carry typed changes: events written as {"changes": {...}} read
back the same, write back the same JSON, and fold as the free dict of old did."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.changes import changes_from
from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.events import JobChanges, JobUpdated, job_event_from
from cairn.domain.jobs.job import Job, decide_update
from cairn.domain.jobs.job import evolve as evolve_job
from cairn.domain.tasks.events import TaskChanges, TaskUpdated, task_event_from
from cairn.domain.tasks.spec import TaskPatch, TaskType
from cairn.domain.tasks.task import Task
from cairn.domain.tasks.task import decide_update as decide_task_update
from cairn.domain.tasks.task import evolve as evolve_task

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=8,
)  # fmt: skip
texts = st.lists(st.text(max_size=10), max_size=3)
task_changes = st.fixed_dictionaries(
    {},
    optional={
        "title": st.text(min_size=1, max_size=20),
        "task_type": st.sampled_from([t.value for t in TaskType]),
        "priority": st.integers(-1, 3),
        "description": st.text(max_size=20),
        "acceptance_criteria": texts,
        "context_files": texts,
        "labels": texts,
        "assignee": st.none() | st.text(min_size=1, max_size=10),
        "pipeline_template": st.none() | st.text(min_size=1, max_size=10),
        "spec": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    },
)
job_changes = st.fixed_dictionaries(
    {},
    optional={
        "payload": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        "normalized": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        "required_capabilities": texts,
        "priority": st.integers(-1, 3),
        "max_attempts": st.integers(1, 50),
        "affinity_key": st.none() | st.text(min_size=1, max_size=10),
    },
)

TASK = Task(id="task-00-a", version=1, project="p", title="Fix login", task_type="bug_fix",
            priority=1, status="backlog", assignee="ann", spec={"a": 1})  # fmt: skip
JOB = Job(id="job-00-j", version=1, project="p", job_type="noop", submitted_type="noop",
          source="queue", payload={}, normalized={}, required_capabilities=["noop"],
          affinity_key="repo")  # fmt: skip


@given(task_changes)
def test_old_task_updates_read_write_and_fold_as_before(changes: dict[str, Any]) -> None:
    data = {"changes": changes}
    event = task_event_from("task.updated", 1, data)
    assert isinstance(event, TaskUpdated)
    assert msgspec.json.decode(msgspec.json.encode(event)) == msgspec.json.decode(
        msgspec.json.encode(data)
    )
    after = evolve_task(TASK, event, TASK.id, 2, "t")
    assert after == msgspec.structs.replace(TASK, version=2, updated_at="t", **changes)


@given(job_changes)
def test_old_job_updates_read_write_and_fold_as_before(changes: dict[str, Any]) -> None:
    data = {"changes": changes}
    event = job_event_from("job.updated", 1, data)
    assert isinstance(event, JobUpdated)
    assert msgspec.to_builtins(event) == data
    after = evolve_job(JOB, event, JOB.id, 2, "t")
    assert after == msgspec.structs.replace(JOB, version=2, updated_at="t", **changes)


@given(job_changes)
def test_a_job_update_writes_only_what_differs(changes: dict[str, Any]) -> None:
    events = decide_update(JOB, msgspec.convert(changes, JobChanges))
    differs = {k: v for k, v in changes.items() if getattr(JOB, k) != v}
    assert events == ([JobUpdated(changes=JobChanges(**differs))] if differs else [])


def test_a_task_update_writes_only_what_differs_and_may_clear_what_is_optional() -> None:
    patch = TaskPatch.model_validate({"title": "Fix login", "assignee": None, "priority": 2})
    [event] = decide_task_update(TASK, patch)[TASK.id]
    assert event == TaskUpdated(changes=TaskChanges(assignee=None, priority=2))
    assert msgspec.to_builtins(event) == {"changes": {"assignee": None, "priority": 2}}
    assert decide_task_update(TASK, TaskPatch.model_validate({"title": "Fix login"})) == {}


@pytest.mark.parametrize("field", ["title", "task_type", "priority", "labels", "spec"])
def test_a_null_for_a_field_a_task_cannot_be_without_is_refused(field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        decide_task_update(TASK, TaskPatch.model_validate({field: None}))
    assert refused.value.errors == [
        {"path": field, "reason": "cannot be null; leave the field out to keep its value"}
    ]


def test_job_changes_refuse_a_null_where_a_job_needs_a_value_and_unknown_fields() -> None:
    assert changes_from(JobChanges, {"affinity_key": None}) == JobChanges(affinity_key=None)
    with pytest.raises(ValidationFailed) as refused:
        changes_from(JobChanges, {"max_attempts": None})
    assert refused.value.errors[0]["path"] == "max_attempts"
    with pytest.raises(ValidationFailed, match="unknown field `status`"):
        changes_from(JobChanges, {"status": "succeeded"})
