"""A project: a board, and the settings its tasks' runs take where a task names none (the
repository, its default branch, the runtime with its model and effort, the publish mode, the
pipeline template, how many of its runs at once). A project that is only a name, as every
project was before it had settings, keeps working: its settings are empty until set."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import UNSET, UnsetType
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from cairn.domain.errors import InvalidTransition, ValidationFailed
from cairn.domain.events import Event
from cairn.domain.jobs.contract import check_branch
from cairn.domain.jobs.kinds import PUBLISH_MODES, RUNTIMES
from cairn.domain.jobs.repositories import check_repository
from cairn.domain.paths import join_path
from cairn.domain.upcast import Upcaster, decode_event

_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+\[\]-]{0,199}")
_EFFORT = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
MAX_CONCURRENCY = 10_000


class ProjectSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    repository: str | None = None
    default_branch: str | None = None
    runtime: str | None = None
    model: str | None = None
    effort: str | None = None
    publish_mode: str | None = None
    pipeline_template: str | None = None
    concurrency: int | None = None  # runs of the project at once (None: the install's limit)


SETTINGS = tuple(ProjectSettings.__struct_fields__)


def _schema(**constraints: Any) -> Any:
    """A field's rule as the API's schema says it (the validators below enforce it, with their
    own words): an enum or a pattern on the string, null still clearing the setting."""
    return Field(json_schema_extra=constraints)


class SettingsInput(BaseModel):
    """What a person may send as a project's settings; a field sent as null clears it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    repository: str | None = Field(default=None, max_length=2000)
    default_branch: str | None = Field(default=None, max_length=255)
    runtime: Annotated[str, _schema(enum=list(RUNTIMES))] | None = None
    model: Annotated[str, _schema(pattern=f"^{_MODEL.pattern}$")] | None = None
    effort: Annotated[str, _schema(pattern=f"^{_EFFORT.pattern}$")] | None = None
    publish_mode: Annotated[str, _schema(enum=list(PUBLISH_MODES))] | None = None
    pipeline_template: Annotated[str, _schema(pattern=f"^{_SLUG.pattern}$")] | None = None
    concurrency: int | None = Field(default=None, ge=0, le=MAX_CONCURRENCY)

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None, info: ValidationInfo) -> str | None:
        allow_local = (info.context or {}).get("allow_local_repositories", False)
        return check_repository(value, allow_local=allow_local) if value else None

    @field_validator("default_branch")
    @classmethod
    def _branch(cls, value: str | None) -> str | None:
        return check_branch(value)

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, value: str | None) -> str | None:
        if value is not None and value not in RUNTIMES:
            raise ValueError(f"must be one of {', '.join(RUNTIMES)}")
        return value

    @field_validator("publish_mode")
    @classmethod
    def _publish(cls, value: str | None) -> str | None:
        if value is not None and value not in PUBLISH_MODES:
            raise ValueError(f"must be one of {', '.join(PUBLISH_MODES)}")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None and not _MODEL.fullmatch(value):
            raise ValueError("letters, digits and . _ : / @ + [ ] -, starting with a letter or "
                             "digit")  # fmt: skip
        return value

    @field_validator("effort")
    @classmethod
    def _effort(cls, value: str | None) -> str | None:
        if value is not None and not _EFFORT.fullmatch(value):
            raise ValueError("an effort level such as low, medium or high")
        return value

    @field_validator("pipeline_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and not _SLUG.fullmatch(value):
            raise ValueError("a template's slug: lowercase letters, digits, '_', '.', '-'")
        return value


def parse_settings(data: Any, *, allow_local: bool, root: str = "settings") -> dict[str, Any]:
    """The settings a person sent, checked (ValidationFailed with the field paths): only the
    fields sent, each a value or None (clear it)."""
    if not isinstance(data, dict):
        raise ValidationFailed(f"{root} must be an object",
                               errors=[{"path": root, "reason": "must be an object"}])  # fmt: skip
    try:
        parsed = SettingsInput.model_validate(
            data, context={"allow_local_repositories": allow_local}
        )
    except ValidationError as e:
        errors = [{"path": join_path(root, err["loc"]), "reason": _reason(err)}
                  for err in e.errors(include_url=False, include_input=False)]  # fmt: skip
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValidationFailed(f"{errors[0]['path']}: {errors[0]['reason']}{more}",
                               errors=errors) from e  # fmt: skip
    return {name: getattr(parsed, name) for name in parsed.model_fields_set}


def _reason(err: Any) -> str:
    if err["type"] == "value_error":
        return str(err["ctx"]["error"])
    if err["type"] == "extra_forbidden":
        return f"unknown setting; the settings are {', '.join(SETTINGS)}"
    return str(err["msg"])


# ---- events --------------------------------------------------------------------------------


class ProjectEvent(Event, frozen=True, kw_only=True, omit_defaults=True):
    pass


class ProjectCreated(ProjectEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "project.created"
    name: str
    settings: ProjectSettings = ProjectSettings()


class ProjectChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The settings a project.updated sets (None clears one); left out (UNSET): kept."""

    repository: str | UnsetType | None = UNSET
    default_branch: str | UnsetType | None = UNSET
    runtime: str | UnsetType | None = UNSET
    model: str | UnsetType | None = UNSET
    effort: str | UnsetType | None = UNSET
    publish_mode: str | UnsetType | None = UNSET
    pipeline_template: str | UnsetType | None = UNSET
    concurrency: int | UnsetType | None = UNSET


class ProjectUpdated(ProjectEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "project.updated"
    changes: ProjectChanges


KINDS: dict[str, type[ProjectEvent]] = {e.TYPE: e for e in (ProjectCreated, ProjectUpdated)}
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def project_event_from(type_: str, schema: int, data: dict[str, Any]) -> ProjectEvent:
    return decode_event(KINDS, UPCASTERS, type_, schema, data)


# ---- the aggregate -------------------------------------------------------------------------


class Project(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    name: str
    settings: ProjectSettings = ProjectSettings()
    created_at: str = ""
    updated_at: str = ""


def evolve(state: Project | None, event: ProjectEvent, project_id: str, version: int,
           ts: str) -> Project:  # fmt: skip
    if isinstance(event, ProjectCreated):
        return Project(id=project_id, version=version, name=event.name, settings=event.settings,
                       created_at=ts, updated_at=ts)  # fmt: skip
    assert state is not None and isinstance(event, ProjectUpdated)
    changed = {k: v for k, v in msgspec.structs.asdict(event.changes).items() if v is not UNSET}
    settings = msgspec.structs.replace(state.settings, **changed)
    return msgspec.structs.replace(state, version=version, settings=settings, updated_at=ts)


def decide_create(state: Project | None, name: str, settings: dict[str, Any]
                  ) -> list[ProjectEvent]:  # fmt: skip
    """A new project with its settings; one that has them already is refused."""
    if state is not None:
        raise InvalidTransition(
            f"project {name!r} exists; change its settings with PATCH /api/v2/projects/{name}",
            project=name,
        )
    clean = {k: v for k, v in settings.items() if v is not None}
    return [ProjectCreated(name=name, settings=ProjectSettings(**clean))]


def decide_update(state: Project | None, name: str, settings: dict[str, Any]
                  ) -> list[ProjectEvent]:  # fmt: skip
    """Set (or clear, with None) some settings; a project known only by its name gets its
    first settings. Nothing changes: nothing is written."""
    if state is None:
        return decide_create(None, name, settings)
    current = msgspec.structs.asdict(state.settings)
    changed = {k: v for k, v in settings.items() if current.get(k) != v}
    if not changed:
        return []
    return [ProjectUpdated(changes=ProjectChanges(**changed))]


# ---- a run's settings: the task's, else its project's, else the install's -----------------


def with_project(job_type: str, payload: dict[str, Any], settings: ProjectSettings
                 ) -> dict[str, Any]:  # fmt: skip
    """A task run's payload with what the task leaves unset taken from its project (the
    install's defaults fill the rest when the job is normalized). Only a `task` job takes
    them; a task whose spec is another job type runs as it says."""
    if job_type != "task":
        return payload
    out = dict(payload)
    if settings.repository and not out.get("repository") and not out.get("repo"):
        out["repository"] = settings.repository
    if settings.runtime and not (out.get("targetRuntime") or out.get("target_runtime")):
        out["targetRuntime"] = settings.runtime
    body = dict(out.get("task") or {})
    runtime = dict(body.get("runtime") or {})
    for name in ("model", "effort"):
        value = getattr(settings, name)
        if value and not runtime.get(name):
            runtime[name] = value
    if runtime:
        body["runtime"] = runtime
    publish = dict(body.get("publish") or {})
    if settings.publish_mode and not publish.get("mode"):
        publish["mode"] = settings.publish_mode
    if publish:
        body["publish"] = publish
    git = dict(body.get("git") or {})
    if settings.default_branch and not (git.get("startingBranch") or git.get("starting_branch")):
        git["startingBranch"] = settings.default_branch
    if git:
        body["git"] = git
    out["task"] = body
    return out


def setting_sources(spec: dict[str, Any], settings: ProjectSettings,
                    install: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    """Where each value of a task's run comes from, for its page: the task's own spec, its
    project's settings, or the install's defaults (`install`: repository, runtime,
    publish_mode)."""
    body = _object(spec.get("task"))
    runtime, publish, git = (_object(body.get(k)) for k in ("runtime", "publish", "git"))
    given = {
        "repository": spec.get("repository") or spec.get("repo"),
        "runtime": spec.get("targetRuntime") or spec.get("target_runtime"),
        "model": runtime.get("model"), "effort": runtime.get("effort"),
        "publish_mode": publish.get("mode"),
        "default_branch": git.get("startingBranch") or git.get("starting_branch"),
    }  # fmt: skip
    rows = []
    for name, value in given.items():
        if value:
            rows.append({"name": name, "value": value, "source": "task"})
        elif (own := getattr(settings, name)) is not None:
            rows.append({"name": name, "value": own, "source": "project"})
        elif install.get(name) is not None:
            rows.append({"name": name, "value": install[name], "source": "install"})
        else:
            rows.append({"name": name, "value": None, "source": "unset"})
    return rows


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
