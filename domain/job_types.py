"""The registry of job types and the one entry point that normalizes a submitted job.

Each job type is one module that calls `register(JobType(...))` on import; the built-in ones
are imported at the bottom of this module, so `JOB_TYPES` is complete once it is imported.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from cairn.domain.credentials import credential_kinds, ensure_no_credentials
from cairn.domain.errors import ValidationFailed
from cairn.domain.paths import join_path

# `shell`: the steps are commands run with `bash -lc` (quick actions that are commands).
Runtime = Literal["codex", "gemini", "claude", "universal", "shell"]
PublishMode = Literal["none", "branch", "pr"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)
PUBLISH_MODES: tuple[str, ...] = get_args(PublishMode)


@dataclass(frozen=True, slots=True)
class ContractSettings:
    """Deployment defaults the contract applies, read once at the edge and passed in."""

    default_repository: str | None = None
    default_publish_mode: str = "pr"
    default_runtime: str = "codex"
    legacy_jobs_enabled: bool = True
    allow_local_repositories: bool = False  # local paths and file:// URLs (one machine, tests)

    def __post_init__(self) -> None:
        # A bad default would otherwise surface as a confusing refusal of every job.
        if self.default_publish_mode not in PUBLISH_MODES:
            raise ValueError(f"default_publish_mode must be one of {', '.join(PUBLISH_MODES)}")
        if self.default_runtime not in RUNTIMES:
            raise ValueError(f"default_runtime must be one of {', '.join(RUNTIMES)}")
        if self.default_repository is not None:
            # Imported here: domain.contract imports this module.
            from cairn.domain.contract import check_repository

            if check_repository(
                self.default_repository, allow_local=self.allow_local_repositories
            ) != self.default_repository:
                raise ValueError("default_repository has surrounding whitespace")


@dataclass(frozen=True, slots=True)
class NormalizedJob:
    """A submitted job as stored: what was sent, its canonical view, and what it needs."""

    job_type: str  # the type it runs as: "task" or "manifest"
    submitted_type: str  # the type it was submitted as, e.g. "codex_exec"
    original: Any
    normalized: dict[str, Any]
    required_capabilities: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def is_legacy(self) -> bool:
        return self.submitted_type != self.job_type


Normalizer = Callable[[dict[str, Any], ContractSettings], NormalizedJob]


@dataclass(frozen=True, slots=True)
class JobType:
    """A named job type; `normalize` gets a credential-free JSON object it may not mutate."""

    name: str
    normalize: Normalizer


JOB_TYPES: dict[str, JobType] = {}


def register(job_type: JobType) -> JobType:
    """Add a job type to the registry; a name may be registered once."""
    if job_type.name in JOB_TYPES:
        raise ValueError(f"job type {job_type.name!r} is already registered")
    JOB_TYPES[job_type.name] = job_type
    return job_type


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


class ContractModel(BaseModel):
    """Base of the contract models: camelCase on the wire, snake_case accepted, no extras."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True
    )


def validation_failed(exc: ValidationError, prefix: str = "payload") -> ValidationFailed:
    """Translate pydantic's errors into ValidationFailed with paths under `prefix`."""
    errors = [
        {"path": join_path(prefix, err["loc"]), "reason": _reason(err)}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return refusal(errors)


def refusal(errors: list[dict[str, str]]) -> ValidationFailed:
    """Build a ValidationFailed whose message summarizes the first of `errors`."""
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ValidationFailed(f"{first['path']}: {first['reason']}{more}", errors=errors)


def _reason(err: Any) -> str:
    kind = err["type"]
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "extra_forbidden":
        return "unknown field; it is not part of the contract"
    if kind == "missing":
        return "required"
    return str(err["msg"])


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number" if isinstance(value, int | float) else "that type")


# Imported last: each of these modules imports `register` (and the types above) from here.
BUILTIN_TYPE_MODULES = (
    "cairn.domain.contract", "cairn.domain.legacy", "cairn.domain.manifest", "cairn.domain.noop",
)
for _module in BUILTIN_TYPE_MODULES:
    importlib.import_module(_module)
