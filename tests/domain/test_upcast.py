"""Reading stored events: the envelope's schema is honoured, unknown types and schemas are
refused by name, and an upcaster brings old data to the current schema."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
import pytest

from cairn.domain.errors import CorruptStream, UnknownEvent
from cairn.domain.jobs.events import JOB_EVENTS, JobClaimed, job_event_from
from cairn.domain.tasks.events import TASK_EVENTS, TaskRunStarted, task_event_from
from cairn.domain.upcast import decode_event


class Renamed(msgspec.Struct, frozen=True, kw_only=True):
    """An event at schema 3 whose field was `who` at schema 1 and `agent` at schema 2."""

    TYPE: ClassVar[str] = "thing.renamed"
    SCHEMA: ClassVar[int] = 3
    agent_id: str


UPCASTERS = {
    ("thing.renamed", 1): lambda d: {"agent": d["who"]},
    ("thing.renamed", 2): lambda d: {"agent_id": d["agent"]},
}


def test_current_events_read_as_written() -> None:
    data = {"job_id": "job-00-j", "agent_id": "w1"}
    assert task_event_from("task.run_started", 1, data) == TaskRunStarted(**data)
    claimed = job_event_from("job.claimed", 1, {"worker_id": "w", "epoch": 2, "attempt": 1})
    assert claimed == JobClaimed(worker_id="w", epoch=2, attempt=1)


@pytest.mark.parametrize("schema", [1, 2, 3])
def test_upcasters_bring_each_old_schema_to_the_current_one(schema: int) -> None:
    data: dict[str, Any] = {1: {"who": "w1"}, 2: {"agent": "w1"}, 3: {"agent_id": "w1"}}[schema]
    kinds = {Renamed.TYPE: Renamed}
    assert decode_event(kinds, UPCASTERS, "thing.renamed", schema, data) == Renamed(agent_id="w1")


def test_a_schema_without_upcaster_or_newer_than_known_is_refused_by_name() -> None:
    kinds = {Renamed.TYPE: Renamed}
    with pytest.raises(UnknownEvent, match="schema 0 cannot be read"):
        decode_event(kinds, UPCASTERS, "thing.renamed", 0, {})
    with pytest.raises(UnknownEvent, match="schema 4 is newer") as newer:
        decode_event(kinds, UPCASTERS, "thing.renamed", 4, {"agent_id": "w"})
    assert newer.value.status == 500 and newer.value.details["current_schema"] == 3
    with pytest.raises(UnknownEvent, match=r"task\.run_started schema 2 is newer"):
        task_event_from("task.run_started", 2, {"job_id": "j", "agent_id": "w"})
    with pytest.raises(UnknownEvent, match=r"job\.claimed schema 2 is newer"):
        job_event_from("job.claimed", 2, {"worker_id": "w", "epoch": 1, "attempt": 1})


@pytest.mark.parametrize(
    ("read", "known"), [(task_event_from, TASK_EVENTS), (job_event_from, JOB_EVENTS)]
)
def test_an_unknown_type_is_refused_naming_the_known_ones(read: Any, known: Any) -> None:
    with pytest.raises(UnknownEvent) as caught:
        read("task.exploded", 1, {})
    assert caught.value.code == "unknown_event" and "'task.exploded'" in caught.value.message
    assert all(name in caught.value.message for name in known)


def test_data_that_does_not_decode_is_a_corrupt_stream() -> None:
    with pytest.raises(CorruptStream, match=r"task\.run_started \(schema 1\) data does not decode"):
        task_event_from("task.run_started", 1, {"job_id": 7})
    with pytest.raises(CorruptStream):
        job_event_from("job.claimed", 1, {"worker_id": "w"})
