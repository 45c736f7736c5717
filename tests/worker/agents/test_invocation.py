"""Command lines per runtime, and the precedence of models and efforts (task, then the worker's
defaults, then the CLI's own)."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.commands.settings import ExecutionSettings
from cairn.domain.jobs.contract import (
    ResolvedRuntime,
    WorkerDefaults,
    normalize_task,
    resolve_runtime,
)
from cairn.domain.jobs.kinds import ContractSettings
from cairn.worker.agents.invocation import (
    MAX_ARGUMENT_BYTES,
    InvalidRuntimeSetting,
    Invocation,
    NoAdapter,
    build_invocation,
    worker_defaults,
)

SETTINGS = ExecutionSettings()
P = "Fix the failing test."


@pytest.mark.parametrize(
    ("runtime", "argv"),
    [
        (ResolvedRuntime("codex", None, None),
         ["codex", "exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check", P]),
        (ResolvedRuntime("codex", "gpt-5-codex", "high"),
         ["codex", "exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check",
          "--model", "gpt-5-codex", "--config", 'model_reasoning_effort="high"', P]),
        (ResolvedRuntime("claude", None, None),
         ["claude", "--print", "--output-format", "stream-json", "--verbose",
          "--permission-mode", "acceptEdits", P]),
        (ResolvedRuntime("claude", "sonnet[1m]", "medium"),
         ["claude", "--print", "--output-format", "stream-json", "--verbose",
          "--permission-mode", "acceptEdits", "--model", "sonnet[1m]", "--effort", "medium", P]),
        (ResolvedRuntime("gemini", None, None),
         ["gemini", "--approval-mode", "auto_edit", "--output-format", "stream-json",
          "--prompt", P]),
        # gemini has no effort flag: the effort is left out.
        (ResolvedRuntime("gemini", "gemini-2.5-pro", "high"),
         ["gemini", "--approval-mode", "auto_edit", "--output-format", "stream-json",
          "--model", "gemini-2.5-pro", "--prompt", P]),
        (ResolvedRuntime("shell", None, None), ["bash", "-lc", "--", P]),
    ],
    ids=["codex", "codex-model-effort", "claude", "claude-model-effort", "gemini",
         "gemini-model-effort", "shell"],
)  # fmt: skip
def test_command_lines_per_runtime(runtime: ResolvedRuntime, argv: list[str]) -> None:
    invocation = build_invocation(runtime, P, SETTINGS)
    structured = runtime.mode != "shell"
    assert invocation == Invocation(argv, structured, stdin=None)


def test_the_execution_settings_choose_sandbox_permissions_and_approval() -> None:
    settings = ExecutionSettings(codex_sandbox="read-only", claude_permission_mode="plan",
                                 gemini_approval_mode="yolo")  # fmt: skip
    argvs = {mode: build_invocation(ResolvedRuntime(mode, None, None), P, settings).argv
             for mode in ("codex", "claude", "gemini")}  # fmt: skip
    assert argvs["codex"][3:5] == ["--sandbox", "read-only"]
    assert argvs["claude"][5:7] == ["--permission-mode", "plan"]
    assert argvs["gemini"][1:3] == ["--approval-mode", "yolo"]


@pytest.mark.parametrize(
    ("mode", "argv"),
    [
        ("codex", ["codex", "exec", "--json", "--sandbox", "workspace-write",
                   "--skip-git-repo-check", "-"]),
        ("claude", ["claude", "--print", "--output-format", "stream-json", "--verbose",
                    "--permission-mode", "acceptEdits"]),
        ("gemini", ["gemini", "--approval-mode", "auto_edit", "--output-format", "stream-json"]),
        ("shell", ["bash", "-ls"]),
    ],
)  # fmt: skip
@pytest.mark.parametrize("prompt", ["x" * (MAX_ARGUMENT_BYTES + 1), "--help me"])
def test_a_long_prompt_or_one_like_an_option_goes_through_stdin(
    mode: str, argv: list[str], prompt: str
) -> None:
    invocation = build_invocation(ResolvedRuntime(mode, None, None), prompt, SETTINGS)
    assert (invocation.argv, invocation.stdin) == (argv, prompt.encode())


def test_a_universal_job_without_a_runtime_is_refused_plainly() -> None:
    with pytest.raises(NoAdapter, match=r"without a runtime.*runtime capability"):
        build_invocation(ResolvedRuntime("universal", None, None), P, SETTINGS)


def test_an_unknown_runtime_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(NoAdapter, match=r"'aider' has no command line.*claude, codex, gemini"):
        build_invocation(ResolvedRuntime("aider", None, None), P, SETTINGS)


@pytest.mark.parametrize(
    ("model", "effort", "match"),
    [("--dangerously-skip-permissions", None, "not a model name"),
     ("gpt 5", None, "not a model name"), (None, 'high" sandbox="danger', "not an effort"),
     (None, "-x", "not an effort")],
)  # fmt: skip
def test_a_model_or_effort_that_could_read_as_an_option_is_refused(
    model: str | None, effort: str | None, match: str
) -> None:
    with pytest.raises(InvalidRuntimeSetting, match=match):
        build_invocation(ResolvedRuntime("codex", model, effort), P, SETTINGS)


def normalized(runtime: dict[str, str]) -> dict[str, Any]:
    payload = {"repository": "owner/repo", "task": {"instructions": P, "runtime": runtime}}
    return normalize_task(payload, ContractSettings(default_publish_mode="none")).normalized


@pytest.mark.parametrize(
    ("task", "flags", "env", "expected"),
    [
        # The task's own model and effort win over everything.
        ({"model": "task-m", "effort": "low"}, {"model": "flag-m", "effort": "high"},
         {"CAIRN_CLAUDE_MODEL": "env-m"}, ("task-m", "low")),
        # Else the worker's flags, for every runtime it has.
        ({}, {"model": "flag-m", "effort": "high"},
         {"CAIRN_CLAUDE_MODEL": "env-m", "CAIRN_CLAUDE_EFFORT": "max"}, ("flag-m", "high")),
        # Else the worker's environment, per runtime.
        ({}, {}, {"CAIRN_CLAUDE_MODEL": "env-m", "CAIRN_CLAUDE_EFFORT": "max",
                  "CAIRN_CODEX_MODEL": "other"}, ("env-m", "max")),
        ({"effort": "low"}, {}, {"CAIRN_CLAUDE_MODEL": "env-m"}, ("env-m", "low")),
        # Else nothing: the CLI's own default.
        ({}, {}, {"CAIRN_CODEX_MODEL": "other", "CAIRN_CLAUDE_MODEL": ""}, (None, None)),
    ],
)  # fmt: skip
def test_model_and_effort_precedence(
    task: dict[str, str], flags: dict[str, str], env: dict[str, str],
    expected: tuple[str | None, str | None],
) -> None:  # fmt: skip
    defaults = worker_defaults(["git", "claude", "codex"], env=env, **flags)
    runtime = resolve_runtime(normalized({"mode": "claude", **task}), defaults)
    assert (runtime.model, runtime.effort) == expected
    argv = build_invocation(runtime, P, SETTINGS).argv
    model, effort = expected
    assert ("--model" in argv, "--effort" in argv) == (model is not None, effort is not None)
    if model:
        assert argv[argv.index("--model") + 1] == model


def test_a_universal_job_runs_on_the_workers_first_agent_runtime() -> None:
    defaults = worker_defaults(["git", "gemini", "claude"], model="m", env={})
    assert defaults == WorkerDefaults("gemini", {"gemini": "m", "claude": "m"}, {})
    runtime = resolve_runtime(normalized({"mode": "universal"}), defaults)
    assert runtime == ResolvedRuntime("gemini", "m", None)
    assert build_invocation(runtime, P, SETTINGS).argv[0] == "gemini"


def test_a_worker_without_agent_runtimes_has_no_runtime_defaults() -> None:
    assert worker_defaults(["git", "noop"], model="m", env={}) == WorkerDefaults()


def test_the_worker_command_takes_a_model_and_an_effort() -> None:
    from cairn.api.cli.main import build_parser

    args = build_parser().parse_args(["worker", "--model", "opus", "--effort", "high"])
    assert (args.model, args.effort) == ("opus", "high")
    defaults = worker_defaults(["claude"], model=args.model, effort=args.effort, env={})
    assert defaults == WorkerDefaults("claude", {"claude": "opus"}, {"claude": "high"})
