"""Command lines per runtime: how each agent CLI runs one prompt without a person at the
keyboard.

Flags as documented (checked 2026-11):
- codex: `codex exec` (https://developers.openai.com/codex/cli/reference#codex-exec and
  https://developers.openai.com/codex/noninteractive): --json prints JSON lines, a
  `turn.completed` event carrying usage; --sandbox read-only|workspace-write|danger-full-access;
  --skip-git-repo-check; -m/--model; -c/--config key=value (`model_reasoning_effort="high"`);
  `-` as the prompt reads it from stdin. Auth: OPENAI_API_KEY, CODEX_API_KEY,
  CODEX_ACCESS_TOKEN, and CODEX_HOME where a `codex login` keeps its auth.json
  (https://developers.openai.com/codex/auth, .../docs/config-file/environment-variables).
- claude: `claude --print` (https://code.claude.com/docs/en/cli-reference, .../headless):
  --output-format stream-json needs --verbose and ends with a `result` line holding usage and
  total_cost_usd; --permission-mode acceptEdits|bypassPermissions|default|plan; --model;
  --effort low|medium|high|xhigh|max (https://code.claude.com/docs/en/model-config); the
  prompt is read from stdin when none is given. Auth: ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN,
  CLAUDE_CODE_OAUTH_TOKEN (https://code.claude.com/docs/en/env-vars).
- gemini: `gemini --prompt` (https://geminicli.com/docs/cli/headless/,
  https://geminicli.com/docs/cli/cli-reference): --approval-mode default|auto_edit|yolo|plan;
  --output-format stream-json ends with a `result` event whose stats hold input_tokens and
  output_tokens (json: stats.models.<model>.tokens.prompt/candidates); -m/--model; piped stdin
  runs headless too. No effort flag: thinking budgets live in settings.json
  (https://geminicli.com/docs/cli/generation-settings), so an effort is ignored. Auth:
  GEMINI_API_KEY, GOOGLE_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_CLOUD_PROJECT,
  GOOGLE_CLOUD_LOCATION, GOOGLE_APPLICATION_CREDENTIALS
  (https://geminicli.com/docs/get-started/authentication).
- shell: `bash -lc -- <command>`: the step's instructions are the command.

What each CLI signs in with and gets from the environment is in clis.py and environment.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cairn.commands.settings import ExecutionSettings
from cairn.domain.errors import CairnError
from cairn.domain.jobs.contract import ResolvedRuntime, WorkerDefaults
from cairn.worker.agents.clis import AGENT_RUNTIMES

# One argument may hold 128 KiB on Linux (MAX_ARG_STRLEN); a longer prompt goes through stdin,
# as does one that starts with '-' and would read as an option.
MAX_ARGUMENT_BYTES = 100_000
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+\[\]-]{0,199}")
_EFFORT = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_SESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # a CLI session id (a UUID)


class NoAdapter(CairnError):
    """No command line for the job's runtime on this worker."""

    code = "no_runtime"


class InvalidRuntimeSetting(CairnError):
    """A model or effort that cannot be passed to the CLI as given."""

    code = "invalid_runtime_setting"


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    structured: bool  # output is JSON lines (or one JSON document) that parse_usage reads
    stdin: bytes | None = None  # the prompt, when it does not fit an argument


def build_invocation(
    runtime: ResolvedRuntime, prompt: str, settings: ExecutionSettings, *,
    resume: str | None = None,
) -> Invocation:
    """The command line that runs `prompt` with `runtime`; model and effort flags only when
    set (else the CLI picks its own default). With `resume`, the CLI's session of that id goes
    on with `prompt` (claude and gemini: `--resume ID`; codex: `exec ... resume ID PROMPT`,
    the sandbox flag on `exec`, else the resumed turn is read-only)."""
    mode = runtime.mode
    if resume is not None and not _SESSION.fullmatch(resume):
        raise InvalidRuntimeSetting(f"session {resume[:40]!r} is not a session id")
    if mode == "universal":
        raise NoAdapter(
            "this universal job reached the worker without a runtime: the worker has no "
            "runtime of its own; start it with a runtime capability (codex, claude or gemini) "
            "or give the task a runtime.mode"
        )
    model, effort = _checked(runtime)
    as_argument = len(prompt.encode()) <= MAX_ARGUMENT_BYTES and not prompt.startswith("-")
    stdin = None if as_argument else prompt.encode()
    if mode == "shell":
        argv = ["bash", "-lc", "--", prompt] if as_argument else ["bash", "-ls"]
        return Invocation(argv, structured=False, stdin=stdin)
    if mode == "codex":
        argv = ["codex", "exec", "--json", "--sandbox", settings.codex_sandbox,
                "--skip-git-repo-check"]  # fmt: skip
        argv += ["--model", model] if model else []
        argv += ["--config", f'model_reasoning_effort="{effort}"'] if effort else []
        argv += ["resume", resume] if resume else []
        argv.append(prompt if as_argument else "-")
    elif mode == "claude":
        argv = ["claude", "--print", "--output-format", "stream-json", "--verbose",
                "--permission-mode", settings.claude_permission_mode]  # fmt: skip
        argv += ["--model", model] if model else []
        argv += ["--effort", effort] if effort else []
        argv += ["--resume", resume] if resume else []
        argv += [prompt] if as_argument else []
    elif mode == "gemini":
        argv = ["gemini", "--approval-mode", settings.gemini_approval_mode,
                "--output-format", "stream-json"]  # fmt: skip
        argv += ["--model", model] if model else []
        argv += ["--resume", resume] if resume else []
        argv += ["--prompt", prompt] if as_argument else []
    else:
        known = ", ".join((*AGENT_RUNTIMES, "shell"))
        raise NoAdapter(f"runtime {mode!r} has no command line on this worker; known: {known}")
    return Invocation(argv, structured=True, stdin=stdin)


def _checked(runtime: ResolvedRuntime) -> tuple[str | None, str | None]:
    # Each goes into its own argument; these rules keep one from reading as an option or
    # breaking out of the TOML string codex's --config takes.
    if runtime.model is not None and not _MODEL.fullmatch(runtime.model):
        raise InvalidRuntimeSetting(
            f"model {runtime.model[:40]!r} is not a model name: letters, digits and . _ : / @ + "
            "[ ] -, starting with a letter or digit, at most 200"
        )
    if runtime.effort is not None and not _EFFORT.fullmatch(runtime.effort):
        raise InvalidRuntimeSetting(
            f"effort {runtime.effort[:40]!r} is not an effort level such as low, medium or high"
        )
    # gemini has no effort flag (see the module's doc): the effort is dropped, not refused.
    return runtime.model, runtime.effort if runtime.mode != "gemini" else None


def worker_defaults(
    capabilities: Iterable[str],
    *,
    model: str | None = None,
    effort: str | None = None,
    env: Mapping[str, str],
) -> WorkerDefaults:
    """A worker's defaults, read once at its start: its runtime for universal jobs (the first
    agent runtime among its capabilities), and per runtime a model and an effort, from
    `cairn worker --model/--effort` (for all its runtimes), else CAIRN_<RUNTIME>_MODEL and
    CAIRN_<RUNTIME>_EFFORT."""
    runtimes = [cap for cap in capabilities if cap in AGENT_RUNTIMES]
    models, efforts = {}, {}
    for runtime in runtimes:
        name = runtime.upper()
        if chosen := model or env.get(f"CAIRN_{name}_MODEL") or None:
            models[runtime] = chosen
        if chosen := effort or env.get(f"CAIRN_{name}_EFFORT") or None:
            efforts[runtime] = chosen
    return WorkerDefaults(mode=runtimes[0] if runtimes else None, models=models, efforts=efforts)
