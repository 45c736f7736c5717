"""The canonical task contract: the payload every coding job is normalized to, and what it needs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from cairn.domain.credentials import (
    REFERENCE_FORMS,
    check_reference,
    looks_like_secret_value,
    safe_key,
)
from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.kinds import (
    ContractModel,
    ContractSettings,
    JobType,
    NormalizedJob,
    PublishMode,
    Runtime,
    refusal,
    validation_failed,
)
from cairn.domain.jobs.publishing import SkipCategory
from cairn.domain.jobs.repositories import REPOSITORY_FORMS, check_repository
from cairn.domain.limits import MAX_INSTRUCTIONS, MAX_REASON, MAX_TITLE

RUNTIME_ALIASES = {"gemini_cli": "gemini"}
# Runtime, repository and publishing belong to the whole task: one run, one checkout, one PR.
FORBIDDEN_STEP_KEYS: tuple[str, ...] = ("runtime", "targetRuntime", "target_runtime", "model")
FORBIDDEN_STEP_KEYS += ("effort", "repository", "repo", "git", "publish", "container")
# The worker owns these inside a container: overriding them would break or leak the run. The
# CAIRN_ prefix covers the variables it sets there (CAIRN_ARTIFACTS_DIR, CAIRN_JOB_ID,
# CAIRN_WORKSPACE, CAIRN_REPO_DIR, ...), including ones a later version adds.
RESERVED_ENV = frozenset({"PATH", "HOME", "USER", "SHELL", "HOSTNAME", "SSH_AUTH_SOCK"})
RESERVED_ENV |= {"LD_PRELOAD", "LD_LIBRARY_PATH", "GH_TOKEN", "GITHUB_TOKEN", "GITLAB_TOKEN"}
RESERVED_ENV_PREFIXES = ("CAIRN_", "GIT_")

# Field sizes: far above honest use; the payload as a whole is bounded too (MAX_PAYLOAD_BYTES).
MAX_SHORT, MAX_LONG, MAX_ARGUMENT, MAX_ITEMS = 200, 2_000, 10_000, 200
MAX_COMMIT_MESSAGE, MAX_PR_BODY, MAX_BRANCH = 10_000, 65_536, 255
Short = Annotated[str, Field(max_length=MAX_SHORT)]
Long = Annotated[str, Field(max_length=MAX_LONG)]
Title = Annotated[str, Field(max_length=MAX_TITLE)]
Branch = Annotated[str, Field(max_length=MAX_BRANCH)]
Instructions = Annotated[str, Field(max_length=MAX_INSTRUCTIONS)]
Capabilities = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=50)]

ENV_SECRET = (
    "looks like a secret; a container's environment holds plain settings or references "
    f"({REFERENCE_FORMS}) that the worker resolves, never the secret itself"
)

_CAPABILITY = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_BAD_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^[-/.]|[/.]$|\.lock$")


def _check_repository_setting(value: str | None, info: ValidationInfo) -> str | None:
    # The setting comes in the validation context; without one (a stored job read again)
    # every form passes, so a job accepted once still reads after the setting changes.
    allow_local = (info.context or {}).get("allow_local_repositories", True)
    return check_repository(value, allow_local=allow_local)


def _clean_capabilities(values: list[str]) -> list[str]:
    cleaned = [value.strip().lower() for value in values]
    if not all(_CAPABILITY.fullmatch(value) for value in cleaned):
        raise ValueError("capabilities are words of a-z, 0-9, '_', '.' or '-'")
    return list(dict.fromkeys(cleaned))


def _runtime_alias(value: Any) -> Any:
    name = value.strip().lower() if isinstance(value, str) else value
    return RUNTIME_ALIASES.get(name, name) if isinstance(name, str) else value


class SkillSpec(ContractModel):
    id: Short = "auto"
    args: dict[str, JsonValue] = Field(default_factory=dict)
    required_capabilities: Capabilities = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("skill id must not be blank; use 'auto' to let the worker choose")
        return "auto" if value.lower() == "auto" else value

    _caps = field_validator("required_capabilities")(_clean_capabilities)


class RuntimeSpec(ContractModel):
    mode: Runtime | None = None
    model: Short | None = None
    effort: Short | None = None

    _alias = field_validator("mode", mode="before")(_runtime_alias)


def check_branch(value: str | None) -> str | None:
    """Trim a branch name (blank means unset) or raise ValueError if git would refuse it."""
    value = value.strip() if value is not None else None
    if value and _BAD_BRANCH.search(value):
        raise ValueError("not a valid git branch name")
    return value or None


def _blank_to_none(value: str | None) -> str | None:
    return value if value is not None and value.strip() else None


class GitSpec(ContractModel):
    starting_branch: Branch | None = None
    new_branch: Branch | None = None

    _branches = field_validator("starting_branch", "new_branch")(check_branch)


class VerificationSkipReason(ContractModel):
    """Why publishing may go ahead without a verification (publishing.SKIP_CATEGORIES)."""

    category: SkipCategory
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        max_length=MAX_REASON
    )
    ticket: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] | None = Field(
        default=None, max_length=MAX_SHORT
    )


class PublishSpec(ContractModel):
    mode: PublishMode | None = None
    pr_base_branch: Branch | None = None
    # An alias of pr_base_branch, folded into it by normalize_task (never in the stored view).
    base_branch: Branch | None = Field(default=None, exclude=True)
    commit_message: str | None = Field(default=None, max_length=MAX_COMMIT_MESSAGE)
    pr_title: Title | None = None
    pr_body: str | None = Field(default=None, max_length=MAX_PR_BODY)
    verification_skip_reason: VerificationSkipReason | None = None
    # What Cairn does about the PR once open (domain/jobs/pulls.py): a follow-up for failed
    # checks (at most maxAutoFixes of them) and for requested changes; on close, ready again.
    on_ci_failure: Literal["follow_up", "notify", "none"] | None = None
    max_auto_fixes: int | None = Field(default=None, ge=0, le=20)
    on_review: Literal["follow_up", "notify"] | None = None
    on_close: Literal["ready", "cancel"] | None = None
    # The word that, in a comment by someone who can write to the repository, runs a follow-up.
    mention: Annotated[str, Field(pattern=r"^@[A-Za-z0-9][A-Za-z0-9_-]{0,38}$")] | None = None

    _base = field_validator("pr_base_branch", "base_branch")(check_branch)


class StepSpec(ContractModel):
    id: Short | None = None
    title: Title | None = None
    instructions: Instructions | None = None
    skill: SkillSpec | None = None


class ContainerSpec(ContractModel):
    enabled: bool = False
    image: Long | None = None
    command: list[Annotated[str, Field(max_length=MAX_ARGUMENT)]] = Field(
        default_factory=list, max_length=MAX_ITEMS
    )
    env: dict[Short, Annotated[str, Field(max_length=MAX_ARGUMENT)]] = Field(
        default_factory=dict, max_length=MAX_ITEMS
    )
    timeout_seconds: int | None = Field(default=None, gt=0, le=86_400)

    _image = field_validator("image")(_blank_to_none)


class TaskBody(ContractModel):
    """The `task` member of a task job's payload: what to run and how (not a board task)."""

    instructions: Instructions | None = None
    skill: SkillSpec = Field(default_factory=SkillSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    git: GitSpec = Field(default_factory=GitSpec)
    publish: PublishSpec = Field(default_factory=PublishSpec)
    steps: list[StepSpec] = Field(default_factory=list, max_length=MAX_ITEMS)
    propose_tasks: bool = False
    container: ContainerSpec | None = None

    _instructions = field_validator("instructions")(_blank_to_none)


class AuthRefs(ContractModel):
    repo_auth_ref: Long | None = None
    publish_auth_ref: Long | None = None

    _refs = field_validator("repo_auth_ref", "publish_auth_ref")(check_reference)


class TaskPayload(ContractModel):
    repository: Long | None = None
    target_runtime: Runtime | None = None
    required_capabilities: Capabilities = Field(default_factory=list)
    auth: AuthRefs = Field(default_factory=AuthRefs)
    task: TaskBody

    _alias = field_validator("target_runtime", mode="before")(_runtime_alias)
    _caps = field_validator("required_capabilities")(_clean_capabilities)

    _repository = field_validator("repository")(_check_repository_setting)

    @property
    def runtime(self) -> str | None:
        """The runtime the task asks for: task.runtime.mode, else targetRuntime."""
        return self.task.runtime.mode or self.target_runtime


def normalize_task(payload: dict[str, Any], settings: ContractSettings) -> NormalizedJob:
    """Validate a canonical task payload and fill in the defaults that routing depends on."""
    _refuse_step_keys(payload)
    parsed = _parse(payload, {"allow_local_repositories": settings.allow_local_repositories})
    errors = _check_rules(parsed, settings)
    if errors:
        raise refusal(errors)
    task = parsed.task
    steps = [s.model_copy(update={"id": f"step-{i}"}) for i, s in enumerate(task.steps, 1)]
    mode = task.publish.mode or settings.default_publish_mode
    base = task.publish.pr_base_branch or task.publish.base_branch
    publish = task.publish.model_copy(
        update={"mode": mode, "pr_base_branch": base, "base_branch": None}
    )
    # Routing is decided now, so the default runtime is recorded rather than re-read later.
    runtime = parsed.target_runtime or parsed.runtime or settings.default_runtime
    repository = parsed.repository or settings.default_repository
    task = task.model_copy(update={"steps": steps, "publish": publish})
    update = {"repository": repository, "target_runtime": runtime, "task": task}
    final = parsed.model_copy(update=update)
    normalized = final.model_dump(by_alias=True)
    return NormalizedJob("task", "task", payload, normalized, derive_capabilities(final))


def derive_capabilities(payload: TaskPayload) -> list[str]:
    """Capabilities a worker needs for a normalized task, in contract order, no duplicates."""
    task = payload.task
    wanted = [*payload.required_capabilities, payload.runtime or "codex", "git"]
    if task.publish.mode == "pr":
        wanted.append("gh")
    wanted += task.skill.required_capabilities
    wanted += [cap for step in task.steps if step.skill for cap in step.skill.required_capabilities]
    if task.container and task.container.enabled:
        wanted.append("docker")
    return list(dict.fromkeys(cap.lower() for cap in wanted))


@dataclass(frozen=True, slots=True)
class WorkerDefaults:
    """A worker's own defaults: the runtime it runs `universal` jobs on, models per runtime."""

    mode: str | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    efforts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResolvedRuntime:
    mode: str
    model: str | None  # None: the CLI picks its own default
    effort: str | None


def resolve_runtime(
    normalized: Mapping[str, Any], worker_defaults: WorkerDefaults
) -> ResolvedRuntime:
    """Settle runtime, model and effort at execution time: the task's, else the worker's."""
    # An orchestrator run's plan job carries the run's marker, added after the contract.
    payload = _parse({k: v for k, v in normalized.items() if k != "orchestrator"})
    mode = payload.runtime or worker_defaults.mode or "codex"
    if mode == "universal" and worker_defaults.mode:
        mode = worker_defaults.mode
    runtime = payload.task.runtime
    return ResolvedRuntime(
        mode=mode,
        model=runtime.model or worker_defaults.models.get(mode),
        effort=runtime.effort or worker_defaults.efforts.get(mode),
    )


def _parse(payload: Mapping[str, Any], context: dict[str, Any] | None = None) -> TaskPayload:
    try:
        return TaskPayload.model_validate(payload, context=context)
    except ValidationError as exc:
        raise validation_failed(exc) from None


def _refuse_step_keys(payload: dict[str, Any]) -> None:
    # Checked before the model so the refusal names the keys instead of "unknown field".
    task = payload.get("task")
    steps = task.get("steps") if isinstance(task, dict) else None
    steps = steps if isinstance(steps, list) else []
    found = [(i, key) for i, step in enumerate(steps) if isinstance(step, dict) for key in step]
    found = [(i, key) for i, key in found if key in FORBIDDEN_STEP_KEYS]
    if found:
        reason = "{} is set once on the task, never on a step"
        errors = [_error(f"task.steps[{i}].{key}", reason.format(key)) for i, key in found]
        keys = ", ".join(sorted({key for _, key in found}))
        raise ValidationFailed(f"steps may not set {keys}; set them on the task", errors=errors)


def _check_rules(payload: TaskPayload, settings: ContractSettings) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    task = payload.task
    if payload.repository is None and settings.default_repository is None:
        errors.append(_error("repository", f"required ({REPOSITORY_FORMS}): give the job one, "
                             "or (a board task) set its project's repository; no default is set "
                             "(CAIRN_DEFAULT_REPOSITORY)"))  # fmt: skip
    bases = {task.publish.base_branch, task.publish.pr_base_branch} - {None}
    if len(bases) > 1:
        reason = "an alias of prBaseBranch, which names another branch; give one of them"
        errors.append(_error("task.publish.baseBranch", reason))
    first_step_skill = task.steps[0].skill if task.steps else None
    chosen = {task.skill.id, first_step_skill.id if first_step_skill else "auto"}
    if not task.instructions and chosen == {"auto"}:
        reason = "required unless task.skill or the first step's skill names a skill (not auto)"
        errors.append(_error("task.instructions", reason))
    container = task.container
    for key, value in container.env.items() if container else ():
        path = f"task.container.env.{safe_key(key)}"
        if not (key.isascii() and key.isidentifier()):
            errors.append(_error(path, "not a valid variable name"))
        elif key.upper() in RESERVED_ENV or key.upper().startswith(RESERVED_ENV_PREFIXES):
            errors.append(_error(path, "reserved; the worker sets it"))
        elif looks_like_secret_value(key, value):
            errors.append(_error(path, ENV_SECRET))
    if container and container.enabled:
        missing = [name for name in ("image", "command") if not getattr(container, name)]
        reason = "required when the container is enabled"
        errors += [_error(f"task.container.{name}", reason) for name in missing]
        if task.steps:
            reason = "steps cannot be combined with an enabled container; use one or the other"
            errors.append(_error("task.steps", reason))
    return errors


def _error(path: str, reason: str) -> dict[str, str]:
    return {"path": f"payload.{path}", "reason": reason}


TASK = JobType(name="task", normalize=normalize_task)
