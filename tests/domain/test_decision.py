"""A decision maps each aggregate to its new events; reading one back keeps its kind."""

from __future__ import annotations

import pytest

from cairn.domain.decision import Decision, events_for
from cairn.domain.jobs.events import JobCancelled, JobEvent
from cairn.domain.tasks.events import TaskEvent, TaskRunRequested


def test_events_for_gives_an_aggregates_events_typed_and_refuses_another_kind() -> None:
    decision: Decision = {"task-00-a": [TaskRunRequested(job_id="job-00-j")],
                          "job-00-j": [JobCancelled()]}  # fmt: skip
    assert events_for(decision, "job-00-j", JobEvent) == [JobCancelled()]
    assert events_for(decision, "task-00-a", TaskEvent) == [TaskRunRequested(job_id="job-00-j")]
    assert events_for(decision, "job-00-k", JobEvent) == []
    with pytest.raises(TypeError, match="job-00-j is given events of another kind"):
        events_for(decision, "job-00-j", TaskEvent)
