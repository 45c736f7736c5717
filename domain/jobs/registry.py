"""The built-in job types and the one entry point that normalizes a submitted job: each type's
module defines its JobType, and this table names them all."""

from __future__ import annotations

import copy
from typing import Any

from cairn.domain.credentials import credential_kinds, ensure_no_credentials
from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.contract import TASK
from cairn.domain.jobs.kinds import ContractSettings, JobType, NormalizedJob
from cairn.domain.jobs.legacy import CODEX_EXEC, CODEX_SKILL
from cairn.domain.jobs.manifest import MANIFEST
from cairn.domain.jobs.noop import NOOP

JOB_TYPES: dict[str, JobType] = {t.name: t for t in (TASK, CODEX_EXEC, CODEX_SKILL, MANIFEST, NOOP)}


def normalize_job(job_type: str, payload: Any, settings: ContractSettings) -> NormalizedJob:
    """Validate and normalize a submitted job, or raise ValidationFailed saying what to fix."""
    # Credentials are refused before anything else reads (or echoes) the payload.
    ensure_no_credentials(payload, "payload")
    known = JOB_TYPES.get(job_type) if isinstance(job_type, str) else None
    if known is None:
        names = ", ".join(sorted(JOB_TYPES))
        echo = isinstance(job_type, str) and len(job_type) <= 64 and not credential_kinds(job_type)
        shown = repr(job_type) if echo else "given"
        raise ValidationFailed(
            f"unknown job type {shown}; known types: {names}",
            errors=[{"path": "type", "reason": f"unknown job type; known types: {names}"}],
        )
    if not isinstance(payload, dict):
        reason = f"must be a JSON object, not {_json_kind(payload)}"
        raise ValidationFailed(f"payload {reason}", errors=[{"path": "payload", "reason": reason}])
    # The normalizer's copy is the stored original: later changes by the caller can't leak in.
    return known.normalize(copy.deepcopy(payload), settings)


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number" if isinstance(value, int | float) else "that type")
