"""A project's settings: checked as a person sends them, set and cleared by events, and taken
by a task's run where the task names none (the task's own values win; the install's defaults
fill what neither gives), with where each value came from."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.errors import InvalidTransition, ValidationFailed
from cairn.domain.tasks.project import (
    Project,
    ProjectEvent,
    ProjectSettings,
    decide_create,
    decide_update,
    evolve,
    parse_settings,
    project_event_from,
    setting_sources,
    with_project,
)

PID = "project-01-0123456789abcdef0123456789"


def apply(state: Project | None, events: list[ProjectEvent]) -> Project:
    for e in events:
        # Through the wire, as the store gives them back.
        e = project_event_from(e.TYPE, e.SCHEMA, msgspec.to_builtins(e))
        state = evolve(state, e, PID, (state.version if state else 0) + 1, "2026-12-07T12:00:00Z")
    assert state is not None
    return state


def test_settings_are_checked_with_their_paths() -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_settings({"repository": "not a repo", "runtime": "aider", "concurrency": -1,
                        "colour": "red"}, allow_local=False)  # fmt: skip
    paths = {e["path"] for e in refused.value.errors}
    assert paths == {"settings.repository", "settings.runtime", "settings.concurrency",
                     "settings.colour"}  # fmt: skip
    reasons = " ".join(e["reason"] for e in refused.value.errors)
    assert "claude, codex" in reasons or "codex" in reasons
    with pytest.raises(ValidationFailed, match="local repositories are off"):
        parse_settings({"repository": "/srv/git/app.git"}, allow_local=False)
    assert parse_settings({"repository": " /srv/git/app.git "}, allow_local=True) == {
        "repository": "/srv/git/app.git"}


def test_a_project_is_created_then_set_and_cleared() -> None:
    project = apply(None, decide_create(None, "shop", {"repository": "acme/shop",
                                                       "runtime": "claude"}))  # fmt: skip
    assert project.settings == ProjectSettings(repository="acme/shop", runtime="claude")
    project = apply(project, decide_update(project, "shop", {"runtime": None, "model": "opus"}))
    assert project.settings == ProjectSettings(repository="acme/shop", model="opus")
    assert decide_update(project, "shop", {"model": "opus"}) == []  # nothing changes
    with pytest.raises(InvalidTransition, match="exists; change its settings with PATCH"):
        decide_create(project, "shop", {})


def test_a_project_known_only_by_its_name_gets_its_first_settings() -> None:
    project = apply(None, decide_update(None, "default", {"publish_mode": "branch"}))
    assert project.name == "default" and project.settings.publish_mode == "branch"


SPEC = {"repository": "acme/own", "task": {"instructions": "x", "runtime": {"model": "m1"}}}
SETTINGS = ProjectSettings(repository="acme/shop", runtime="claude", model="opus",
                           effort="high", publish_mode="branch", default_branch="dev")  # fmt: skip


def test_a_run_takes_the_tasks_values_else_the_projects() -> None:
    payload = with_project("task", SPEC, SETTINGS)
    assert payload["repository"] == "acme/own"  # the task's
    assert payload["targetRuntime"] == "claude"  # the project's
    assert payload["task"]["runtime"] == {"model": "m1", "effort": "high"}
    assert payload["task"]["publish"] == {"mode": "branch"}
    assert payload["task"]["git"] == {"startingBranch": "dev"}
    assert with_project("noop", {}, SETTINGS) == {}  # another job type runs as it says


def test_where_each_value_came_from() -> None:
    rows = {r["name"]: r for r in setting_sources(SPEC, ProjectSettings(runtime="gemini"),
                                                  {"repository": None, "runtime": "codex",
                                                   "publish_mode": "pr"})}  # fmt: skip
    assert (rows["repository"]["value"], rows["repository"]["source"]) == ("acme/own", "task")
    assert (rows["runtime"]["value"], rows["runtime"]["source"]) == ("gemini", "project")
    assert (rows["publish_mode"]["value"], rows["publish_mode"]["source"]) == ("pr", "install")
    assert rows["effort"]["source"] == "unset"


settings = st.builds(
    ProjectSettings, repository=st.none() | st.just("acme/x"),
    runtime=st.none() | st.sampled_from(["claude", "codex"]), model=st.none() | st.just("m"),
    publish_mode=st.none() | st.just("pr"),
)  # fmt: skip
specs = st.fixed_dictionaries({}, optional={
    "repository": st.just("acme/own"), "targetRuntime": st.just("gemini"),
    "task": st.fixed_dictionaries({"instructions": st.just("x")}, optional={
        "runtime": st.fixed_dictionaries({}, optional={"model": st.just("own")}),
        "publish": st.fixed_dictionaries({}, optional={"mode": st.just("none")})})})  # fmt: skip


@given(specs, settings)
def test_the_tasks_own_values_always_win(spec: dict[str, Any], own: ProjectSettings) -> None:
    payload = with_project("task", spec, own)
    if "repository" in spec:
        assert payload["repository"] == spec["repository"]
    if "targetRuntime" in spec:
        assert payload["targetRuntime"] == spec["targetRuntime"]
    given_model = ((spec.get("task") or {}).get("runtime") or {}).get("model")
    if given_model:
        assert payload["task"]["runtime"]["model"] == given_model
    assert with_project("task", payload, own) == payload  # applying twice changes nothing
