"""One way to write a field path, for the board task's fields and a job's payload alike."""

from __future__ import annotations

import pytest

from cairn.domain.errors import ValidationFailed
from cairn.domain.paths import join_path
from cairn.domain.tasks.spec import TaskPatch, parse_model


def test_paths_read_as_a_person_writes_them() -> None:
    assert join_path("payload", ("task", "steps", 0, "title")) == "payload.task.steps[0].title"
    assert join_path("", ("labels", 2)) == "labels[2]"
    assert join_path("payload", ("task", "container", "env", "HOME", "[key]")) == (
        "payload.task.container.env.HOME"
    )
    assert join_path("", ()) == ""


def test_a_key_is_shown_safely() -> None:
    long_key = "k" * 100
    assert join_path("body", (long_key,)) == "body." + "k" * 64 + "..."


def test_a_task_field_error_is_placed_by_path_and_the_body_itself_is_named() -> None:
    with pytest.raises(ValidationFailed) as field:
        parse_model(TaskPatch, {"labels": ["ok", "not ok!"]})
    assert [err["path"] for err in field.value.errors] == ["labels[1]"]
    with pytest.raises(ValidationFailed) as body:
        parse_model(TaskPatch, [])
    assert [err["path"] for err in body.value.errors] == ["body"]
