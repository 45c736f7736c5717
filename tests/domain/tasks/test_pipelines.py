"""Pipelines: every task type has one; the feature pipeline is the issue's; unknown names are
refused with the field."""

from __future__ import annotations

import pytest

from cairn.domain.errors import ValidationFailed
from cairn.domain.tasks.pipelines import PIPELINES, pipeline_for
from cairn.domain.tasks.spec import TaskType


def test_every_task_type_has_a_pipeline() -> None:
    assert {t.value for t in TaskType} <= set(PIPELINES)


def test_the_feature_pipeline() -> None:
    assert [s.id for s in pipeline_for("feature")] == [
        "plan", "plan_impl", "implement", "verify", "review", "commit"
    ]  # fmt: skip


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_step_ids_are_unique_and_code_changes_end_with_commit(name: str) -> None:
    ids = [s.id for s in PIPELINES[name]]
    assert len(ids) == len(set(ids))
    if name != "research":
        assert ids[-1] == "commit"
    assert all(s.instructions and s.title for s in PIPELINES[name])


def test_a_template_wins_over_the_type_and_an_unknown_one_is_refused() -> None:
    assert pipeline_for("feature", "docs") == PIPELINES["docs"]
    with pytest.raises(ValidationFailed) as caught:
        pipeline_for("feature", "nope")
    assert caught.value.errors[0]["path"] == "pipeline_template"
