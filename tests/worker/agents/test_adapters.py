"""Command lines per runtime, the precedence of models and efforts (task, then the worker's
defaults, then the CLI's own), and the usage read from each CLI's structured output."""

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
from cairn.worker.agents.adapters import (
    AUTH_ENV,
    MAX_ARGUMENT_BYTES,
    InvalidRuntimeSetting,
    Invocation,
    NoAdapter,
    build_invocation,
    parse_usage,
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
    assert invocation == Invocation(argv, AUTH_ENV[runtime.mode], structured, stdin=None)


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
    with pytest.raises(NoAdapter, match=r"'aider' has no command line.*codex, claude, gemini"):
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


CODEX = """\
2026-11-30T10:00:00.120Z WARN codex_core::config: ignoring unknown key `theme`
{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"**Scanning**"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls",\
"aggregated_output":"README.md\\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"Done."}}
{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,\
"output_tokens":122}}
"""
CLAUDE_RESULT = (
    '{"type":"result","subtype":"success","is_error":false,"duration_ms":5321,'
    '"duration_api_ms":4900,"num_turns":3,"result":"Fixed.","session_id":"5f1c",'
    '"total_cost_usd":0.0421,"usage":{"input_tokens":12,"cache_creation_input_tokens":5120,'
    '"cache_read_input_tokens":20480,"output_tokens":340,"service_tier":"standard"}}'
)
CLAUDE_STREAM = f"""\
{{"type":"system","subtype":"init","cwd":"/w","session_id":"5f1c","model":"claude-sonnet-4-5"}}
{{"type":"assistant","message":{{"role":"assistant","content":[{{"type":"text","text":"On it"}}],\
"usage":{{"input_tokens":4,"output_tokens":12}}}},"session_id":"5f1c"}}
{CLAUDE_RESULT}
"""
GEMINI_STREAM = """\
{"type":"init","timestamp":"2026-11-30T10:00:00.000Z","session_id":"abc","model":"gemini-2.5-pro"}
{"type":"message","timestamp":"2026-11-30T10:00:01.000Z","role":"assistant","content":"Done",\
"delta":true}
{"type":"result","timestamp":"2026-11-30T10:00:02.000Z","status":"success","stats":\
{"total_tokens":1520,"input_tokens":1400,"output_tokens":120,"cached":0,"input":1400,\
"duration_ms":3012,"tool_calls":1}}
"""
GEMINI_JSON = """\
Loaded cached credentials.
{
  "session_id": "abc",
  "response": "Done",
  "stats": {
    "models": {
      "gemini-2.5-pro": {
        "api": {"totalRequests": 2, "totalErrors": 0, "totalLatencyMs": 5053},
        "tokens": {"input": 3676, "prompt": 24939, "candidates": 20, "total": 25113,
                   "cached": 21263, "thoughts": 154, "tool": 0}
      },
      "gemini-2.5-flash": {"tokens": {"prompt": 1000, "candidates": 50, "total": 1050}}
    },
    "tools": {"totalCalls": 1}
  }
}
"""


@pytest.mark.parametrize(
    ("mode", "output", "usage"),
    [
        ("codex", CODEX, {"tokens_in": 24763, "tokens_out": 122}),
        ("codex", CODEX + CODEX.splitlines()[-1], {"tokens_in": 49526, "tokens_out": 244}),
        ("claude", CLAUDE_STREAM, {"tokens_in": 25612, "tokens_out": 340, "cost_usd": 0.0421}),
        ("claude", CLAUDE_RESULT, {"tokens_in": 25612, "tokens_out": 340, "cost_usd": 0.0421}),
        ("gemini", GEMINI_STREAM, {"tokens_in": 1400, "tokens_out": 120}),
        ("gemini", GEMINI_JSON, {"tokens_in": 25939, "tokens_out": 70}),
        ("codex", CODEX.replace('"turn.completed"', '"turn.failed"'), None),
        ("claude", '{"type":"result","usage":"lots"}', None),
        ("claude", '{"type":"result","usage":{"input_tokens":"many","output_tokens":-3},'
                   '"total_cost_usd":"free"}', {"tokens_in": 0, "tokens_out": 0}),
        ("gemini", '{"stats": {"models": ["not", "a", "map"]}}', None),
        ("shell", CODEX, None),
    ],
    ids=["codex", "codex-two-turns", "claude-stream", "claude-json", "gemini-stream",
         "gemini-json", "codex-failed", "claude-odd-usage", "claude-odd-numbers", "gemini-odd",
         "shell"],
)  # fmt: skip
def test_usage_from_each_clis_output(mode: str, output: str, usage: dict[str, Any] | None) -> None:
    assert parse_usage(mode, output) == usage


@pytest.mark.parametrize("mode", ["codex", "claude", "gemini"])
@pytest.mark.parametrize(
    "garbage",
    ["", "plain text\nno json here", "{broken", "{}\n[]\n{", '{"type": 3}', "}{" * 1000,
     "\x00\xff{\n\n}", '{"stats": null}'],
)  # fmt: skip
def test_usage_parsing_tolerates_garbage(mode: str, garbage: str) -> None:
    assert parse_usage(mode, garbage) is None


def test_the_worker_command_takes_a_model_and_an_effort() -> None:
    from cairn.api.cli.main import build_parser

    args = build_parser().parse_args(["worker", "--model", "opus", "--effort", "high"])
    assert (args.model, args.effort) == ("opus", "high")
    defaults = worker_defaults(["claude"], model=args.model, effort=args.effort, env={})
    assert defaults == WorkerDefaults("claude", {"claude": "opus"}, {"claude": "high"})
