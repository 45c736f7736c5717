"""The service catalog: each service an aggregate of its own (kind `svc`, its id from its name),
with the rules a run on it follows (its repository and branch, the files a plan may change,
the operator's build, restart and verify commands, approval, rollback) and what it holds: the
run changing it now and the runs waiting their turn (one run at a time per service), and the
last verify result."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

import msgspec
from pydantic import Field, ValidationError, field_validator, model_validator

from cairn.domain.credentials import ensure_no_credentials
from cairn.domain.errors import CorruptStream, DomainError, NotFound, ValidationFailed
from cairn.domain.events import Event
from cairn.domain.jobs.contract import Branch, check_branch
from cairn.domain.jobs.kinds import ContractModel, ContractSettings, validation_failed
from cairn.domain.jobs.repositories import check_repository
from cairn.domain.orchestrator.paths import check_pattern
from cairn.domain.upcast import Upcaster, decode_event

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
CHECK_OUTPUT_MAX = 4_000  # the end of a verify's output, as the catalog keeps it
WAITING_MAX = 100  # runs queued behind one service


class Command(ContractModel):
    """An operator's command, run with `bash -lc` in the service's checkout."""

    run: str = Field(min_length=1, max_length=4000)
    timeout_seconds: int = Field(default=300, ge=1, le=3600)


class HttpCheck(ContractModel):
    """A health check: `url` answers `expectStatus` within `windowSeconds`, tried up to
    `retries` times."""

    url: str = Field(min_length=1, max_length=2000, pattern=r"^https?://[^\s]+$")
    expect_status: int = Field(default=200, ge=100, le=599)
    retries: int = Field(default=10, ge=1, le=100)
    window_seconds: float = Field(default=30, gt=0, le=3600)


class Verify(ContractModel):
    """A command, or an HTTP health check (one of the two)."""

    run: str | None = Field(default=None, min_length=1, max_length=4000)
    timeout_seconds: int = Field(default=300, ge=1, le=3600)
    http: HttpCheck | None = None

    @model_validator(mode="after")
    def _one(self) -> Verify:
        if (self.run is None) == (self.http is None):
            raise ValueError("give either run (a command) or http (a health check)")
        return self


class Rollback(ContractModel):
    """`revert`: git revert of the run's commit, rebuild, restart, verify; `command`: `run`."""

    mode: Literal["revert", "command"] = "revert"
    run: str | None = Field(default=None, min_length=1, max_length=4000)
    timeout_seconds: int = Field(default=600, ge=1, le=3600)

    @model_validator(mode="after")
    def _command(self) -> Rollback:
        if self.mode == "command" and self.run is None:
            raise ValueError("mode command needs run: the rollback command")
        if self.mode == "revert" and self.run is not None:
            raise ValueError("run is for mode command; mode revert reverts the run's commit")
        return self


class Compose(ContractModel):
    """Shorthand: the commands from `docker compose` for one service of a project file."""

    file: str = Field(default="compose.yaml", min_length=1, max_length=500,
                      pattern=r"^[^\s'\"`$;&|<>]+$")  # fmt: skip
    service: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ServiceSpec(ContractModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=2000)
    repository: str = Field(min_length=1, max_length=2000)
    branch: Branch = "main"
    allowed_paths: list[str] = Field(min_length=1, max_length=100)
    build: Command | None = None
    restart: Command | None = None
    verify: Verify | None = None
    logs: Command | None = None  # its recent logs, for the analysis (e.g. journalctl -n 200)
    protected: bool = False
    rollback: Rollback = Rollback()
    compose: Compose | None = None
    # The worker's environment variables the commands get (besides PATH, HOME and the locale):
    # the commands run code the agent may have patched, so nothing else of the worker's reaches
    # them (its tokens, its keys).
    env: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("env")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for i, name in enumerate(value):
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,99}", name) or name.startswith("CAIRN_"):
                raise ValueError(f"env[{i}] must be a variable's name (A-Z, 0-9, _), not "
                                 "one of Cairn's own (CAIRN_*)")  # fmt: skip
        return value

    _branch = field_validator("branch")(check_branch)

    @field_validator("allowed_paths")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        for i, pattern in enumerate(value):
            if (why := check_pattern(pattern)) is not None:
                raise ValueError(f"allowedPaths[{i}] {why}")
        return value

    @model_validator(mode="after")
    def _commands(self) -> ServiceSpec:
        if self.compose is not None:
            return self
        missing = [n for n in ("build", "restart", "verify") if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{', '.join(missing)} missing: give the build, restart and verify "
                             "commands, or a compose block")  # fmt: skip
        return self


def parse_service(document: Any, settings: ContractSettings, *, name: str | None = None,
                  prefix: str = "") -> dict[str, Any]:  # fmt: skip
    """A service definition as stored (camelCase, defaults filled, compose expanded), or
    ValidationFailed with the field paths. `name`: the one the URL gives, which the body may
    repeat but not contradict."""
    if isinstance(document, dict) and name is not None:
        given = document.get("name", name)
        if given != name:
            raise validation_failed_at(_at(prefix, "name"),
                                       f"is {given!r} but the URL names {name!r}")
        document = {**document, "name": name}
    ensure_no_credentials(document, prefix or "body")  # references, never values
    try:
        spec = ServiceSpec.model_validate(document)
    except ValidationError as e:
        raise validation_failed(e, prefix) from e
    try:
        check_repository(spec.repository, allow_local=settings.allow_local_repositories)
    except ValueError as e:
        raise validation_failed_at(_at(prefix, "repository"), str(e)) from e
    stored = spec.model_dump(by_alias=True, exclude_none=True)
    if spec.compose is not None:
        stored.update(compose_commands(spec.compose, stored))
    return stored


def _at(prefix: str, field: str) -> str:
    return f"{prefix}.{field}" if prefix else field


def validation_failed_at(path: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {reason}", errors=[{"path": path, "reason": reason}])


def compose_commands(compose: Compose, given: dict[str, Any]) -> dict[str, Any]:
    """The three commands a compose block stands for (any given explicitly wins)."""
    base = f"docker compose -f {compose.file}"
    derived = {
        "build": {"run": f"{base} build {compose.service}", "timeoutSeconds": 1800},
        "restart": {"run": f"{base} up -d --no-deps {compose.service}", "timeoutSeconds": 600},
        "verify": {"run": f"{base} ps --status running --services | grep -qx "
                          f"{compose.service}", "timeoutSeconds": 120},
        "logs": {"run": f"{base} logs --no-color --tail 200 {compose.service}",
                 "timeoutSeconds": 60},
    }  # fmt: skip
    return {k: given.get(k) or v for k, v in derived.items()}


def capabilities_of(spec: dict[str, Any]) -> list[str]:
    """What a worker needs to apply a run on the service."""
    return ["git", "orchestrator", *(["docker"] if spec.get("compose") else [])]


# ---- the aggregate --------------------------------------------------------------------------


class ServiceEvent(Event, frozen=True, kw_only=True, omit_defaults=True):
    pass


class ServiceDefined(ServiceEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "service.defined"
    spec: dict[str, Any]


class ServiceRemoved(ServiceEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "service.removed"


class ServiceClaimed(ServiceEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A run holds the service now: no other run plans or applies on it until it ends."""

    TYPE: ClassVar[str] = "service.claimed"
    run_id: str


class ServiceQueued(ServiceEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A run waits for the run holding the service."""

    TYPE: ClassVar[str] = "service.queued"
    run_id: str


class ServiceReleased(ServiceEvent, frozen=True, kw_only=True, omit_defaults=True):
    """The run holding the service ended (or a waiting one left the line)."""

    TYPE: ClassVar[str] = "service.released"
    run_id: str


class ServiceChecked(ServiceEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A run's last verify: passed or not, and the end of its output."""

    TYPE: ClassVar[str] = "service.checked"
    run_id: str
    passed: bool
    output: str = ""


SERVICE_EVENTS: dict[str, type[ServiceEvent]] = {
    cls.TYPE: cls
    for cls in (ServiceDefined, ServiceRemoved, ServiceClaimed, ServiceQueued, ServiceReleased,
                ServiceChecked)
}  # fmt: skip
SERVICE_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def service_event_from(type_: str, schema: int, data: dict[str, Any]) -> ServiceEvent:
    return decode_event(SERVICE_EVENTS, SERVICE_UPCASTERS, type_, schema, data)


class Service(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    name: str
    spec: dict[str, Any]
    removed: bool = False
    holder: str | None = None  # the run changing the service now
    waiting: list[str] = []  # runs waiting their turn, first in line first
    last_check: dict[str, Any] | None = None  # {run_id, passed, output, at}
    created_at: str = ""
    updated_at: str = ""


def evolve(state: Service | None, event: ServiceEvent, service_id: str, version: int,
           ts: str) -> Service:  # fmt: skip
    expected = 1 if state is None else state.version + 1
    if version != expected:
        raise CorruptStream(f"service {service_id}: event version {version} follows "
                            f"{expected - 1}", aggregate_id=service_id,
                            version=version)  # fmt: skip
    replace = msgspec.structs.replace
    if isinstance(event, ServiceDefined):
        if state is None:
            return Service(id=service_id, version=1, name=str(event.spec["name"]),
                           spec=event.spec, created_at=ts, updated_at=ts)  # fmt: skip
        return replace(state, version=version, spec=event.spec, removed=False, updated_at=ts)
    if state is None:
        raise CorruptStream(f"service {service_id}: version 1 is {event.TYPE}",
                            aggregate_id=service_id, version=version)  # fmt: skip
    s = replace(state, version=version, updated_at=ts)
    match event:
        case ServiceRemoved():
            return replace(s, removed=True)
        case ServiceClaimed(run_id=run):
            return replace(s, holder=run, waiting=[w for w in s.waiting if w != run])
        case ServiceQueued(run_id=run):
            return replace(s, waiting=[*s.waiting, run])
        case ServiceReleased(run_id=run):
            return replace(s, holder=None if s.holder == run else s.holder,
                           waiting=[w for w in s.waiting if w != run])  # fmt: skip
        case ServiceChecked(run_id=run, passed=passed, output=output):
            check = {"run_id": run, "passed": passed, "output": output, "at": ts}
            return replace(s, last_check=check)
    return s


def decide_define(service: Service | None, spec: dict[str, Any], *, create: bool
                  ) -> list[ServiceEvent]:  # fmt: skip
    """Create (`create`: refused if it exists) or replace a service's definition."""
    exists = service is not None and not service.removed
    if create and exists:
        assert service is not None
        raise DomainError(f"service {service.name} exists; PUT replaces its definition",
                          service=service.name)  # fmt: skip
    if exists and service is not None and service.spec == spec:
        return []
    return [ServiceDefined(spec=spec)]


def decide_remove(service: Service | None, name: str) -> list[ServiceEvent]:
    live = require(service, name)
    if live.holder is not None or live.waiting:
        runs = ", ".join([r for r in (live.holder, *live.waiting) if r])
        raise DomainError(f"service {name} has runs going or waiting ({runs}): cancel them "
                          "first", service=name, runs=runs.split(", "))  # fmt: skip
    return [ServiceRemoved()]


def require(service: Service | None, name: str) -> Service:
    if service is None or service.removed:
        raise NotFound(f"no service named {name!r} in the catalog", service=name)
    return service


def last_output(text: str) -> str:
    return text[-CHECK_OUTPUT_MAX:]
