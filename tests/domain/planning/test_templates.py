"""The Template decider and its inputs: saves fold to numbered versions (a built-in's first save
is its version 2), the same content saves nothing, an edit from an old version is refused;
expansion fills every placeholder and names each missing, unknown or wrongly typed input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.decision import Decision, events_for
from cairn.domain.errors import ValidationFailed, VersionConflict
from cairn.domain.planning.template_events import InputDef, StepDef, TemplateEvent
from cairn.domain.planning.template_inputs import expand
from cairn.domain.planning.templates import (
    Template,
    TemplateBody,
    builtin_version,
    decide_save,
    evolve,
    resolve,
    steps_for_run,
    uses_template,
)
from cairn.domain.tasks.pipelines import PIPELINES
from cairn.domain.tasks.task import Task

TID = "template-01-" + "a" * 26


def body(slug: str = "release", title: str = "Release", **fields: Any) -> TemplateBody:
    steps = fields.pop("steps", [{"id": "tag", "title": "Tag {{version}}",
                                  "instructions": "Tag {{version}} on {{branch}}."}])  # fmt: skip
    inputs = fields.pop("inputs", [{"name": "version", "type": "string"},
                                   {"name": "branch", "type": "string", "default": "main"}])
    return TemplateBody.model_validate({"slug": slug, "title": title, "steps": steps,
                                        "inputs": inputs, **fields})  # fmt: skip


def apply(state: Template | None, decision: Decision) -> Template | None:
    for event in events_for(decision, TID, TemplateEvent):
        version = state.version + 1 if state else 1
        state = evolve(state, event, TID, version, f"t{version}")
    return state


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=10),
       st.sampled_from(["release", "docs"]))  # fmt: skip
def test_saves_fold_to_numbered_versions(titles: list[str], slug: str) -> None:
    state: Template | None = None
    contents: list[str] = []
    for title in titles:
        state = apply(state, decide_save(state, TID, body(slug, title)))
        if not contents or contents[-1] != title:
            contents.append(title)
    assert state is not None and state.builtin == (slug in PIPELINES)
    first = 2 if slug in PIPELINES else 1
    assert [v.number for v in state.versions] == list(range(first, first + len(contents)))
    assert [v.title for v in state.versions] == contents
    assert state.latest is not None and state.latest.title == contents[-1]
    for v in state.versions:  # every old version stays readable
        assert state.at(v.number) == v
    assert (state.at(1) == builtin_version(slug)) == (slug in PIPELINES)


def test_an_edit_from_an_old_version_is_refused() -> None:
    state = apply(None, decide_save(None, TID, body(title="one")))
    state = apply(state, decide_save(state, TID, body(title="two", base_version=1)))
    with pytest.raises(VersionConflict) as caught:
        decide_save(state, TID, body(title="three", base_version=1))
    assert caught.value.details["latest_version"] == 2
    assert decide_save(None, TID, body("docs", base_version=1))  # the built-in is version 1


def test_saving_the_builtin_as_it_is_writes_nothing() -> None:
    builtin = builtin_version("docs")
    assert builtin is not None
    steps = [{"id": s.id, "title": s.title, "instructions": s.instructions} for s in builtin.steps]
    assert decide_save(None, TID, body("docs", builtin.title, steps=steps, inputs=[],
                                       description=builtin.description)) == {}  # fmt: skip


@pytest.mark.parametrize(("fields", "path"), [
    ({"inputs": [{"name": "x"}, {"name": "x"}], "steps": [{"id": "a", "title": "A",
                                                           "instructions": "{{x}}"}]},
     "inputs[1].name"),
    ({"inputs": [{"name": "x", "type": "enum"}]}, "inputs[0].choices"),
    ({"inputs": [{"name": "x", "type": "integer", "default": "three"}]}, "inputs[0].default"),
    ({"inputs": [{"name": "x", "type": "boolean", "default": 1}]}, "inputs[0].default"),
    ({"inputs": [], "steps": [{"id": "a", "title": "A", "instructions": "{{nope}}"}]},
     "steps[0].instructions"),
    ({"inputs": [], "steps": [{"id": "a", "title": "A", "instructions": "x"},
                              {"id": "a", "title": "B", "instructions": "y"}]}, "steps[1].id"),
])  # fmt: skip
def test_a_definition_that_contradicts_itself_is_refused_by_path(
    fields: dict[str, Any], path: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decide_save(None, TID, body(**fields))
    assert path in [e["path"] for e in caught.value.errors]


INPUTS = [
    InputDef(name="version", type="string"),
    InputDef(name="count", type="integer", default=2),
    InputDef(name="dry", type="boolean", default=False),
    InputDef(name="env", type="enum", choices=["staging", "prod"], default="staging"),
]
STEPS = [StepDef(id="go", title="Ship {{ version }} to {{env}}",
                 instructions="{{count}} times, dry run {{dry}}; {{version}}")]  # fmt: skip


def test_expand_fills_every_placeholder_with_given_values_or_defaults() -> None:
    assert expand(INPUTS, STEPS, {"version": "1.2", "dry": True}) == [
        {"id": "go", "title": "Ship 1.2 to staging", "instructions": "2 times, dry run true; 1.2"}
    ]


@given(st.dictionaries(st.sampled_from(["version", "count", "dry", "env", "colour"]),
                       st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none(),
                                 st.sampled_from(["staging", "prod"]))))  # fmt: skip
def test_expand_names_each_fault_by_its_input(given_: dict[str, Any]) -> None:
    declared = {i.name: i for i in INPUTS}
    expected = set()
    for name, value in given_.items():
        spec = declared.get(name)
        ok = spec is not None and value is not None and {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
            "enum": value in spec.choices,
        }[spec.type]
        if not ok:
            expected.add(f"inputs.{name}")
    if given_.get("version") is None:
        expected.add("inputs.version")  # required: no default
    try:
        steps = expand(INPUTS, STEPS, given_)
    except ValidationFailed as e:
        assert {err["path"] for err in e.errors} == expected
        return
    assert not expected and "{{" not in steps[0]["title"] + steps[0]["instructions"]


def task(**fields: Any) -> Task:
    return Task(id="task-01-" + "b" * 26, version=1, project="p", title="T", task_type="docs",
                priority=1, status="ready", **fields)  # fmt: skip


def test_a_run_takes_the_saved_template_else_the_builtin() -> None:
    builtin = [{"id": s.id, "title": s.title, "instructions": s.instructions}
               for s in PIPELINES["docs"]]  # fmt: skip
    assert steps_for_run(task(), None) == builtin
    saved = apply(None, decide_save(None, TID, body("docs", inputs=[{"name": "version",
                                                    "type": "string", "default": "v1"},
                                                   {"name": "branch", "type": "string",
                                                    "default": "main"}])))  # fmt: skip
    assert steps_for_run(task(), saved)[0]["title"] == "Tag v1"
    with pytest.raises(ValidationFailed) as caught:
        steps_for_run(task(pipeline_template="nope"), None)
    assert caught.value.errors[0]["path"] == "pipeline_template"
    needs = apply(None, decide_save(None, TID, body("docs")))  # `version` has no default
    with pytest.raises(ValidationFailed) as missing:
        steps_for_run(task(), needs)
    assert missing.value.errors[0]["path"] == "inputs.version"


def test_only_a_task_without_steps_of_its_own_uses_a_template() -> None:
    assert uses_template(task())
    assert uses_template(task(spec={"task": {"instructions": "x"}}))
    assert not uses_template(task(spec={"task": {"steps": [{"instructions": "x"}]}}))
    assert not uses_template(task(spec={"type": "noop", "payload": {}}))


def test_resolve_names_the_missing_version() -> None:
    with pytest.raises(ValidationFailed) as caught:
        resolve("docs", None, 3)
    assert caught.value.errors[0]["path"] == "version"
    assert "has 1" in caught.value.message
