"""Configuration, read once at the edge from CAIRN_* variables and passed in from there."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.tasks.states import Flags


def _duration(raw: str | None, default: float, errors: list[dict[str, str]]) -> float:
    """Seconds from `90`, `90s`, `15m`, `24h` or `2d`."""
    if raw in (None, ""):
        return default
    assert raw is not None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", raw)
    if match is None or float(match[1]) <= 0:
        errors.append({"path": "CAIRN_APPROVAL_TIMEOUT",
                       "reason": f"must be a duration such as 3600, 90m, 24h or 2d, got {raw!r}"})
        return default
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}[match[2]]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


GiB = 1024**3


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """How a worker isolates agent steps (worker/sandbox.py; CAIRN_SANDBOX_* and CAIRN_STEP_*
    variables; see the README)."""

    mode: str = "bubblewrap"  # or "off": every run marked "not sandboxed"
    network: str = "on"  # or "none": no network at all in the step
    user: str = "nobody"  # who a root worker's steps run as
    hide: tuple[str, ...] = ()  # more folders a step sees empty
    # Folders every step may read and write (a package cache, say): shared by all jobs, so
    # the operator's choice; never one that holds the data dir or the worker's home.
    shared: tuple[str, ...] = ()
    memory_max: int = 8 * GiB  # the step's processes' resident memory, together
    processes_max: int = 1024  # processes and threads
    open_files_max: int = 8192
    disk_max: int = 10 * GiB  # the workspace (repo/ and home/)
    tmp_max: int = 256 * 1024**2  # the step's private /tmp, in memory


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    """How a worker runs a job on a repository (CAIRN_* variables; see the README)."""

    git_base_url: str = "https://github.com/"  # what owner/repo resolves against
    allow_local_repositories: bool = False  # local paths and file:// URLs (one machine, tests)
    keep_workspaces: bool = False
    skills_dirs: tuple[Path, ...] = ()
    codex_sandbox: str = "workspace-write"
    claude_permission_mode: str = "acceptEdits"
    gemini_approval_mode: str = "auto_edit"
    step_timeout_s: float = 3600.0
    idle_timeout_s: float = 900.0
    job_timeout_s: float = 4 * 3600.0
    git_author_name: str = "Cairn"
    git_author_email: str = "cairn@localhost"
    vault_addr: str | None = None
    artifact_max_bytes: int = 50 * 1024 * 1024
    output_max_entries: int = 20_000  # per job, in the live output stream
    # Live sessions (a person watching or taking over a running job): this worker serves them,
    # and its agent steps run under a pseudo-terminal (CAIRN_LIVE_SESSIONS).
    live_sessions: bool = False
    live_idle_s: float = 600.0  # a takeover nobody typed in for this long ends
    live_max: int = 100  # sessions this worker serves at once, over all its jobs
    # More variables an agent gets from the worker's environment, by name (CAIRN_AGENT_ENV).
    agent_env: tuple[str, ...] = ()
    # model -> {"in", "cached", "out"}: USD per million tokens (CAIRN_PRICES), for the CLIs
    # that report no cost of their own.
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)


@dataclass(frozen=True, slots=True)
class PullSettings:
    """The PR watcher's pace, and the secret GitHub signs its webhook deliveries with (no
    secret: the webhook refuses every delivery)."""

    poll_s: float = 30.0
    max_poll_s: float = 300.0
    budget_per_minute: int = 60
    webhook_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str | None = None
    data_dir: Path = Path(".cairn")
    prefix: str = "cairn"
    partitions: int = 16
    admin_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    flags: Flags = field(default_factory=Flags)
    command_ttl_s: int = 86_400
    read_your_writes_timeout_s: float = 5.0
    default_repository: str | None = None
    default_publish_mode: str = "pr"
    default_runtime: str = "codex"
    legacy_jobs_enabled: bool = True
    max_running: int = 0  # 0: no limit
    repo_concurrency: int = 0
    project_concurrency: int = 0
    retry_base_s: float = 15.0
    retry_cap_s: float = 600.0
    lease_s: float = 120.0
    max_body_bytes: int = 1_048_576
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    pulls: PullSettings = field(default_factory=PullSettings)
    # Orchestrator runs: how long a plan waits for its approval, and whether its submitter may
    # approve it (four eyes: not).
    approval_timeout_s: float = 86_400.0
    four_eyes: bool = False
    live_session_max_ttl_s: int = 1_800  # CAIRN_LIVE_SESSION_MAX_TTL: a live session's longest

    def contract(self) -> ContractSettings:
        """The defaults the job contract applies."""
        return ContractSettings(
            default_repository=self.default_repository,
            default_publish_mode=self.default_publish_mode,
            default_runtime=self.default_runtime,
            legacy_jobs_enabled=self.legacy_jobs_enabled,
            allow_local_repositories=self.execution.allow_local_repositories,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from the environment; a bad value is an error naming the variable."""
        env = os.environ if env is None else env
        errors: list[dict[str, str]] = []

        def number(name: str, default: float, kind: type = int, minimum: float = 1) -> float:
            raw = env.get(name)
            if raw in (None, ""):
                return default
            noun = "an integer" if kind is int else "a number"
            try:
                value = kind(raw)
            except ValueError:
                errors.append({"path": name, "reason": f"must be {noun}, got {raw!r}"})
                return default
            if value < minimum:
                errors.append({"path": name, "reason": f"must be {noun} of at least {minimum:g}"})
            return float(value) if kind is float else int(value)

        settings = cls(
            redis_url=env.get("CAIRN_REDIS_URL") or None,
            data_dir=Path(env.get("CAIRN_DATA_DIR") or ".cairn"),
            prefix=env.get("CAIRN_PREFIX") or "cairn",
            partitions=int(number("CAIRN_PARTITIONS", 16)),
            admin_token=env.get("CAIRN_ADMIN_TOKEN") or None,
            host=env.get("CAIRN_HOST") or "127.0.0.1",
            port=int(number("CAIRN_PORT", 8080)),
            flags=Flags(auto_approve_review=_flag(env.get("FEATURE_PRD_AUTO_APPROVE_REVIEW"))),
            command_ttl_s=int(number("CAIRN_COMMAND_TTL_S", 86_400)),
            read_your_writes_timeout_s=float(
                number("CAIRN_READ_YOUR_WRITES_TIMEOUT_S", 5.0, float, minimum=0)
            ),
            default_repository=env.get("CAIRN_DEFAULT_REPOSITORY") or None,
            default_publish_mode=env.get("CAIRN_DEFAULT_PUBLISH_MODE") or "pr",
            default_runtime=env.get("CAIRN_DEFAULT_RUNTIME") or "codex",
            legacy_jobs_enabled=(env.get("CAIRN_LEGACY_JOBS") or "on").lower() != "off",
            max_running=int(number("CAIRN_MAX_RUNNING", 0, minimum=0)),
            repo_concurrency=int(number("CAIRN_REPO_CONCURRENCY", 0, minimum=0)),
            project_concurrency=int(number("CAIRN_PROJECT_CONCURRENCY", 0, minimum=0)),
            retry_base_s=float(number("CAIRN_RETRY_BASE_S", 15.0, float, minimum=0)),
            retry_cap_s=float(number("CAIRN_RETRY_CAP_S", 600.0, float, minimum=0)),
            lease_s=float(number("CAIRN_LEASE_S", 120.0, float, minimum=0.1)),
            max_body_bytes=int(number("CAIRN_MAX_BODY_BYTES", 1_048_576, minimum=1024)),
            approval_timeout_s=_duration(env.get("CAIRN_APPROVAL_TIMEOUT"), 86_400.0, errors),
            four_eyes=_flag(env.get("CAIRN_ORCHESTRATOR_FOUR_EYES")),
            live_session_max_ttl_s=int(number("CAIRN_LIVE_SESSION_MAX_TTL", 1_800, minimum=10)),
            pulls=PullSettings(
                poll_s=float(number("CAIRN_PR_POLL_S", 30.0, float, minimum=0.1)),
                max_poll_s=float(number("CAIRN_PR_POLL_MAX_S", 300.0, float, minimum=0.1)),
                budget_per_minute=int(number("CAIRN_PR_POLL_BUDGET", 60)),
                webhook_secret=env.get("CAIRN_GITHUB_WEBHOOK_SECRET") or None,
            ),
            execution=ExecutionSettings(
                git_base_url=env.get("CAIRN_GIT_BASE_URL") or "https://github.com/",
                allow_local_repositories=_flag(env.get("CAIRN_ALLOW_LOCAL_REPOSITORIES")),
                keep_workspaces=_flag(env.get("CAIRN_KEEP_WORKSPACES")),
                skills_dirs=tuple(
                    Path(p) for p in (env.get("CAIRN_SKILLS_DIRS") or "").split(os.pathsep) if p
                ),
                codex_sandbox=env.get("CAIRN_CODEX_SANDBOX") or "workspace-write",
                claude_permission_mode=env.get("CAIRN_CLAUDE_PERMISSION_MODE") or "acceptEdits",
                gemini_approval_mode=env.get("CAIRN_GEMINI_APPROVAL_MODE") or "auto_edit",
                step_timeout_s=float(number("CAIRN_STEP_TIMEOUT_S", 3600.0, float)),
                idle_timeout_s=float(number("CAIRN_IDLE_TIMEOUT_S", 900.0, float)),
                job_timeout_s=float(number("CAIRN_JOB_TIMEOUT_S", 4 * 3600.0, float)),
                git_author_name=env.get("CAIRN_GIT_AUTHOR_NAME") or "Cairn",
                git_author_email=env.get("CAIRN_GIT_AUTHOR_EMAIL") or "cairn@localhost",
                vault_addr=env.get("CAIRN_VAULT_ADDR") or None,
                artifact_max_bytes=int(
                    number("CAIRN_ARTIFACT_MAX_BYTES", 50 * 1024 * 1024, minimum=1024)
                ),
                output_max_entries=int(number("CAIRN_OUTPUT_MAX_ENTRIES", 20_000, minimum=100)),
                live_sessions=_flag(env.get("CAIRN_LIVE_SESSIONS")),
                live_idle_s=float(number("CAIRN_LIVE_SESSION_IDLE_S", 600.0, float)),
                live_max=int(number("CAIRN_LIVE_SESSIONS_MAX", 100)),
                agent_env=_agent_env(env.get("CAIRN_AGENT_ENV") or "", errors),
                prices=_prices(env.get("CAIRN_PRICES") or "", errors),
                sandbox=_sandbox(env, errors),
            ),
        )
        try:
            settings.contract()
        except ValueError as e:
            errors.append({"path": "CAIRN_DEFAULT_*", "reason": str(e)})
        if settings.partitions > 100:
            errors.append({"path": "CAIRN_PARTITIONS", "reason": "must be at most 100"})
        if errors:
            raise ValidationFailed("the configuration is not valid", errors)
        return settings


_SIZE = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _sandbox(env: Mapping[str, str], errors: list[dict[str, str]]) -> SandboxSettings:
    defaults = SandboxSettings()

    def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = (env.get(name) or default).strip().lower()
        if value not in allowed:
            errors.append({"path": name, "reason": f"must be one of {', '.join(allowed)}, "
                           f"got {value!r}"})  # fmt: skip
            return default
        return value

    def size(name: str, default: int) -> int:
        raw = env.get(name)
        if raw in (None, ""):
            return default
        match = _SIZE.match(raw)
        if match is None or float(match[1]) <= 0:
            errors.append({"path": name, "reason": f"must be a size such as 512M or 10G, got "
                           f"{raw!r}"})  # fmt: skip
            return default
        return int(float(match[1]) * _UNITS[match[2].lower()])

    def count(name: str, default: int) -> int:
        raw = env.get(name)
        if raw in (None, ""):
            return default
        if not raw.strip().isdigit() or int(raw) < 16:
            errors.append({"path": name, "reason": f"must be an integer of at least 16, got "
                           f"{raw!r}"})  # fmt: skip
            return default
        return int(raw)

    mode = choice("CAIRN_SANDBOX", "bubblewrap", ("bubblewrap", "off"))
    shared = tuple(p for p in (env.get("CAIRN_SANDBOX_SHARED") or "").split(os.pathsep) if p)
    guarded = [Path(env.get("CAIRN_DATA_DIR") or ".cairn").resolve(), Path.home().resolve()]
    for folder in shared:
        path = Path(folder)
        if not path.is_absolute():
            errors.append({"path": "CAIRN_SANDBOX_SHARED", "reason": f"{folder!r} is not an "
                           "absolute path"})  # fmt: skip
        elif any(g == path.resolve() or path.resolve() in g.parents for g in guarded):
            errors.append({"path": "CAIRN_SANDBOX_SHARED", "reason": f"{folder} holds the data "
                           "dir or the worker's home: every step would see them"})  # fmt: skip
    return SandboxSettings(
        mode=mode,
        network=choice("CAIRN_SANDBOX_NETWORK", "on", ("on", "none")),
        user=(env.get("CAIRN_SANDBOX_USER") or defaults.user).strip(),
        hide=tuple(p for p in (env.get("CAIRN_SANDBOX_HIDE") or "").split(os.pathsep) if p),
        shared=shared,
        memory_max=size("CAIRN_STEP_MEMORY_MAX", defaults.memory_max),
        processes_max=count("CAIRN_STEP_PROCESSES_MAX", defaults.processes_max),
        open_files_max=count("CAIRN_STEP_OPEN_FILES_MAX", defaults.open_files_max),
        disk_max=size("CAIRN_STEP_DISK_MAX", defaults.disk_max),
        tmp_max=size("CAIRN_STEP_TMP_MAX", defaults.tmp_max),
    )


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def _agent_env(raw: str, errors: list[dict[str, str]]) -> tuple[str, ...]:
    """`NAME,NAME`: variables an agent may also read. Cairn's own never: they hold the store's
    address and password."""
    names = [n.strip() for n in raw.split(",") if n.strip()]
    bad = [n for n in names if not _NAME.fullmatch(n)]
    ours = [n for n in names if n.upper().startswith("CAIRN_")]
    if bad:
        errors.append({"path": "CAIRN_AGENT_ENV", "reason": f"not a variable name: {bad[0]!r}"})
    if ours:
        errors.append({"path": "CAIRN_AGENT_ENV", "reason": f"{ours[0]} is Cairn's own; an "
                       "agent never gets CAIRN_ variables"})  # fmt: skip
    return tuple(dict.fromkeys(n for n in names if n not in bad and n not in ours))


def _prices(raw: str, errors: list[dict[str, str]]) -> dict[str, dict[str, float]]:
    """A JSON object, inline or in the file it names: {"model": {"in": 1.25, "cached": 0.125,
    "out": 10}}, USD per million tokens."""
    if not raw.strip():
        return {}
    reason = "must be a JSON object {model: {in, cached, out}} (USD per million tokens), or " \
             "the path of a file holding one"  # fmt: skip
    try:
        text = raw if raw.lstrip().startswith("{") else Path(raw).read_text()
        table: Any = json.loads(text)
    except (OSError, ValueError) as e:
        errors.append({"path": "CAIRN_PRICES", "reason": f"{reason}: {e}"})
        return {}
    prices: dict[str, dict[str, float]] = {}
    for model, price in table.items() if isinstance(table, dict) else [(None, None)]:
        if not isinstance(model, str) or not isinstance(price, dict) or not price or any(
            k not in ("in", "cached", "out") or isinstance(v, bool) or
            not isinstance(v, int | float) or v < 0 for k, v in price.items()
        ):  # fmt: skip
            errors.append({"path": f"CAIRN_PRICES.{model}", "reason": reason})
            return {}
        prices[model] = {k: float(v) for k, v in price.items()}
    return prices
