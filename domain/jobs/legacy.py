"""Legacy `codex_exec` and `codex_skill` jobs, converted to the canonical task contract.

The stored job keeps the legacy payload as sent; the caller records `job.legacy_submitted`
for each one (see NormalizedJob.is_legacy) so their use can be measured and retired.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.contract import normalize_task
from cairn.domain.jobs.kinds import ContractSettings, JobType, NormalizedJob, refusal

LEGACY_FLAG = "CAIRN_LEGACY_JOBS"
LEGACY_KEYS: tuple[str, ...] = ("repository", "instruction", "skillId", "inputs", "codex", "ref")
LEGACY_KEYS += ("publishMode", "publish")
# What each legacy job cannot do without: the contract's own rule would name a canonical path.
_REQUIRED = {"codex_exec": "instruction", "codex_skill": "skillId"}


def convert_legacy(kind: str, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Map a legacy payload to a canonical one, plus canonical -> legacy paths for errors."""
    errors = [
        _error(key, f"unknown field for {kind}; known: {', '.join(LEGACY_KEYS)}")
        for key in payload
        if key not in LEGACY_KEYS
    ]
    required = _REQUIRED[kind]
    if payload.get(required) is None:
        errors.append(_error(required, f"required for a {kind} job"))
    inputs, codex, publish = (
        _object(payload, key, errors) for key in ("inputs", "codex", "publish")
    )
    errors += [
        _error(f"codex.{key}", "unknown field; known: model, effort")
        for key in codex
        if key not in ("model", "effort")
    ]
    if errors:
        raise refusal(errors)

    paths: dict[str, str] = {}
    task: dict[str, Any] = {"git": {}, "runtime": {}, "skill": {}, "publish": dict(publish)}
    _move(payload, "instruction", task, "instructions", paths, "task.instructions")
    if "instruction" not in payload:
        # A codex_skill job sent its instruction among the skill's inputs; it stays there too.
        where = "inputs.instruction"
        _move(inputs, "instruction", task, "instructions", paths, "task.instructions", where)
    _move(payload, "ref", task["git"], "startingBranch", paths, "task.git.startingBranch")
    for key in ("model", "effort"):
        _move(codex, key, task["runtime"], key, paths, f"task.runtime.{key}", f"codex.{key}")
    _move(payload, "skillId", task["skill"], "id", paths, "task.skill.id")
    _move(payload, "inputs", task["skill"], "args", paths, "task.skill.args")
    paths["task.publish"] = "publish"
    modes = ((payload, "publishMode", None), (inputs, "publishMode", "inputs.publishMode"))
    for source, key, legacy_path in (*modes, (publish, "mode", "publish.mode")):
        if source.get(key) is not None:
            _move(source, key, task["publish"], "mode", paths, "task.publish.mode", legacy_path)
            break

    canonical: dict[str, Any] = {"targetRuntime": "codex", "task": task}
    if payload.get("repository") is not None:
        _move(payload, "repository", canonical, "repository", paths, "repository")
    else:
        _move(inputs, "repo", canonical, "repository", paths, "repository", "inputs.repo")
    return canonical, paths


def normalize_legacy(
    kind: str, payload: dict[str, Any], settings: ContractSettings
) -> NormalizedJob:
    """Normalize a legacy job into a task job, or refuse it when legacy jobs are disabled."""
    if not settings.legacy_jobs_enabled:
        reason = f"legacy {kind} jobs are disabled ({LEGACY_FLAG}=false); submit a 'task' job"
        raise ValidationFailed(reason, errors=[{"path": "type", "reason": reason}])
    canonical, paths = convert_legacy(kind, payload)
    try:
        job = normalize_task(canonical, settings)
    except ValidationFailed as exc:
        raise refusal([{**e, "path": _legacy_path(e["path"], paths)} for e in exc.errors]) from None
    warning = f"job type {kind!r} is deprecated and was converted to a 'task' job; submit those"
    return dataclasses.replace(
        job, submitted_type=kind, original=payload, warnings=[*job.warnings, warning]
    )


def _legacy_path(path: str, paths: dict[str, str]) -> str:
    # The longest canonical prefix that came from a legacy field names that field instead.
    inner = path.removeprefix("payload.")
    for canonical in sorted(paths, key=len, reverse=True):
        if inner == canonical or inner.startswith((f"{canonical}.", f"{canonical}[")):
            return f"payload.{paths[canonical]}{inner[len(canonical) :]}"
    return path


def _move(
    source: dict[str, Any],
    key: str,
    target: dict[str, Any],
    target_key: str,
    paths: dict[str, str],
    canonical_path: str,
    legacy_path: str | None = None,
) -> None:
    if key in source:
        target[target_key] = source[key]
        paths[canonical_path] = legacy_path or key


def _object(payload: dict[str, Any], key: str, errors: list[dict[str, str]]) -> dict[str, Any]:
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(_error(key, "must be an object"))
        return {}
    return value


def _error(path: str, reason: str) -> dict[str, str]:
    return {"path": f"payload.{path}", "reason": reason}


def _legacy_type(kind: str) -> JobType:
    return JobType(name=kind, normalize=lambda payload, s: normalize_legacy(kind, payload, s))


CODEX_EXEC = _legacy_type("codex_exec")
CODEX_SKILL = _legacy_type("codex_skill")
