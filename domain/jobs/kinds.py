"""What every job type shares: the runtimes and publish modes, the deployment defaults the
contract applies, a normalized job, and the base model and error translation of the contract
models. The built-in types and the one entry point that normalizes a job are in registry.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.repositories import check_repository
from cairn.domain.paths import join_path

# `shell`: the steps are commands run with `bash -lc` (quick actions that are commands).
Runtime = Literal["codex", "gemini", "claude", "universal", "shell"]
PublishMode = Literal["none", "branch", "pr"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)
AGENT_RUNTIMES = ("claude", "codex", "gemini")  # the runtimes that are an agent CLI
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
        repository = self.default_repository
        if repository is not None and repository != check_repository(
            repository, allow_local=self.allow_local_repositories
        ):
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
