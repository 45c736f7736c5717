"""The real agent CLIs for the tests: where the pinned ones are installed (tests/agents, by
./scripts/test with `npm ci`), and a step's run of one as a worker makes it (its command line,
HOME and environment from worker/agents) against the scripted model server, without the rest
of Cairn around it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from cairn.commands.settings import ExecutionSettings
from cairn.domain.jobs.contract import ResolvedRuntime
from cairn.worker.agents.environment import prepare_home, step_env
from cairn.worker.agents.invocation import build_invocation
from tests.agents.model_server import ModelServer

HERE = Path(__file__).resolve().parent
BIN = HERE / "node_modules" / ".bin"
RUNTIMES = ("claude", "codex", "gemini")
# A model each CLI knows how to price or route without a vendor's catalogue.
MODELS = {"claude": "claude-sonnet-4-5", "codex": "gpt-5.1-codex", "gemini": "gemini-2.5-flash"}
# Gemini in headless auto_edit mode offers no shell tool unless the settings allow it, and
# retries a failing request ten times unless told fewer: the operator's template says both.
GEMINI_SETTINGS = '{"tools": {"allowed": ["run_shell_command"]}, "general": {"maxAttempts": 2}}'


def require_clis() -> Path:
    """The pinned CLIs' bin folder; skips when npm could not install them here, except where
    CAIRN_REQUIRE_AGENTS is set (CI), which fails instead."""
    missing = [name for name in RUNTIMES if not (BIN / name).exists()]
    if missing:
        reason = (f"the pinned agent CLIs are not installed in {BIN} ({', '.join(missing)} "
                  "missing): ./scripts/test installs them with npm, which this machine lacks")
        if os.environ.get("CAIRN_REQUIRE_AGENTS"):
            pytest.fail(reason)
        pytest.skip(reason)
    return BIN


def vendor_env(runtime: str, server: ModelServer, home: Path, *, key: str = "test-key"
               ) -> dict[str, str]:  # fmt: skip
    """What a worker of `runtime` would have to reach the scripted server: the key and the
    endpoint (codex: a provider in its HOME's config.toml, which a template folder gives)."""
    if runtime == "claude":
        return {"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": server.url}
    if runtime == "codex":
        return {"OPENAI_API_KEY": key, "OPENAI_BASE_URL": f"{server.url}/v1"}
    return {"GEMINI_API_KEY": key, "GOOGLE_GEMINI_BASE_URL": server.url}


def template(root: Path, runtime: str) -> Path:
    """An operator's HOME template for `runtime` as the tests want it."""
    folder = root / f"template-{runtime}"
    if runtime == "gemini":
        (folder / ".gemini").mkdir(parents=True, exist_ok=True)
        (folder / ".gemini" / "settings.json").write_text(GEMINI_SETTINGS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Ran:
    exit_status: int | None
    output: str  # stdout and stderr, merged as a step's log has them
    seconds: float
    repo: Path
    home: Path


def run_like_a_step(runtime: str, prompt: str, server: ModelServer, root: Path, *,
                    env: Mapping[str, str] | None = None, timeout: float = 120,
                    model: str | None = None, agent_env: Sequence[str] = ()) -> Ran:  # fmt: skip
    """Run `runtime` on `prompt` in a fresh checkout under `root`, as a worker's step does."""
    BIN_DIR = require_clis()
    repo, home = root / "repo", root / "home"
    shutil.rmtree(root, ignore_errors=True)
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    worker_env = {
        "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(root / "worker-home"),
        f"CAIRN_{runtime.upper()}_HOME_TEMPLATE": str(template(root, runtime)),
        **vendor_env(runtime, server, home),
        **(env or {}),
    }
    invocation = build_invocation(ResolvedRuntime(runtime, model or MODELS[runtime], None),
                                  prompt, ExecutionSettings())  # fmt: skip
    prepare_home(runtime, home, worker_env)
    step, _ = step_env(runtime, home, worker_env, agent_env)
    started = time.monotonic()
    try:
        done = subprocess.run(invocation.argv, cwd=repo, env=step, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                              check=False)  # fmt: skip
        exit_status: int | None = done.returncode
        output = done.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        exit_status, output = None, (e.stdout or b"").decode(errors="replace")
    return Ran(exit_status, output, time.monotonic() - started, repo, home)
