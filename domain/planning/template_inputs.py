"""A template's inputs: the rules a definition keeps (declared once, typed, every placeholder
declared) and its expansion, `{{name}}` in each step's title and instructions replaced by the
input's value. Every fault is named by its path, all of them at once."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from cairn.domain.errors import ValidationFailed
from cairn.domain.limits import MAX_INSTRUCTIONS, MAX_TITLE
from cairn.domain.paths import join_path
from cairn.domain.planning.template_events import InputDef, StepDef

INPUT_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")
TYPES = ("string", "integer", "boolean", "enum")
Errors = list[dict[str, str]]


def check_definition(inputs: Sequence[InputDef], steps: Sequence[StepDef]) -> None:
    """Refuse a definition whose inputs or steps contradict themselves, naming each place."""
    errors: Errors = []
    seen: set[str] = set()
    for i, given in enumerate(inputs):
        where = f"inputs[{i}]"
        if given.name in seen:
            errors.append({"path": f"{where}.name", "reason": "declared twice"})
        seen.add(given.name)
        if given.type == "enum" and not given.choices:
            errors.append({"path": f"{where}.choices", "reason": "an enum input lists its "
                                                                 "choices"})  # fmt: skip
        elif given.type != "enum" and given.choices:
            errors.append({"path": f"{where}.choices", "reason": "only an enum input has choices"})
        if len(set(given.choices)) != len(given.choices):
            errors.append({"path": f"{where}.choices", "reason": "a choice is listed twice"})
        if given.default is not None:
            fault = _fault(given, given.default)
            if fault:
                errors.append({"path": f"{where}.default", "reason": fault})
    ids: set[str] = set()
    for i, step in enumerate(steps):
        if step.id in ids:
            errors.append({"path": f"steps[{i}].id", "reason": "used by an earlier step"})
        ids.add(step.id)
        for field in ("title", "instructions"):
            for name in PLACEHOLDER.findall(getattr(step, field)):
                if name not in seen:
                    known = ", ".join(sorted(seen)) or "none"
                    errors.append({"path": f"steps[{i}].{field}", "reason": "{{" + name + "}} "
                                   f"is not a declared input (declared: {known})"})  # fmt: skip
    if errors:
        raise ValidationFailed(f"the template is not valid: {errors[0]['path']}: "
                               f"{errors[0]['reason']}", errors)  # fmt: skip


def expand(
    inputs: Sequence[InputDef], steps: Sequence[StepDef], given: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The steps with each placeholder replaced by its input's value (given, else its
    default); a missing, unknown or wrongly typed input is refused at `inputs.<name>`."""
    declared = {i.name: i for i in inputs}
    errors: Errors = []
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            errors.append({"path": join_path("inputs", [name]),
                           "reason": f"unknown input; the template declares: {known}"})  # fmt: skip
    values: dict[str, str] = {}
    for name, spec in declared.items():
        value = given.get(name, spec.default)
        if value is None:
            errors.append({"path": f"inputs.{name}", "reason": f"required ({_wanted(spec)})"})
            continue
        fault = _fault(spec, value)
        if fault:
            errors.append({"path": f"inputs.{name}", "reason": fault})
            continue
        values[name] = _text(value)
    expanded = []
    for i, step in enumerate(steps):
        title, instructions = _fill(step.title, values), _fill(step.instructions, values)
        for field, text, limit in (("title", title, MAX_TITLE),
                                   ("instructions", instructions, MAX_INSTRUCTIONS)):  # fmt: skip
            if len(text) > limit:
                errors.append({"path": f"steps[{i}].{field}",
                               "reason": f"is {len(text)} characters once expanded; at most "
                                         f"{limit}: send shorter inputs"})  # fmt: skip
        expanded.append({"id": step.id, "title": title, "instructions": instructions})
    if errors:
        raise ValidationFailed(f"the inputs do not fit the template: {errors[0]['path']}: "
                               f"{errors[0]['reason']}", errors)  # fmt: skip
    return expanded


def _fault(spec: InputDef, value: Any) -> str:
    """Why `value` is not a value of the input, or ''."""
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "enum": isinstance(value, str) and value in spec.choices,
    }.get(spec.type, False)
    if ok and isinstance(value, str) and len(value) > MAX_INSTRUCTIONS:
        return f"at most {MAX_INSTRUCTIONS} characters"
    return "" if ok else f"must be {_wanted(spec)}"


def _wanted(spec: InputDef) -> str:
    if spec.type == "enum":
        return "one of " + ", ".join(repr(c) for c in spec.choices)
    return {"string": "a string", "integer": "an integer", "boolean": "true or false"}.get(
        spec.type, spec.type
    )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(text: str, values: Mapping[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
