"""What an agent step gets from the worker: a minimal environment (its runtime's sign-in and
endpoint variables, the proxy and certificate variables, and the names an operator adds with
CAIRN_AGENT_ENV; never the worker's own), and a HOME holding a copy of just the CLI's sign-in
and settings files, the operator's template for the runtime, and the settings a headless run
needs. Refreshed tokens are not written back; the copy goes with the workspace."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cairn.worker.agents.clis import CLIS, NETWORK_ENV, AgentCli
from cairn.worker.agents.signin import (
    claude_state_file,
    config_dir,
    find_signin,
    template_dir,
)
from cairn.worker.process import minimal_env

# Of claude's account file, what a headless run needs: the account and onboarding, never the
# projects' history.
CLAUDE_STATE_KEYS = (
    "oauthAccount", "userID", "primaryApiKey", "customApiKeyResponses", "hasCompletedOnboarding",
    "lastOnboardingVersion", "firstStartTime",
)  # fmt: skip
CODEX_PROVIDER = "cairn-gateway"
_TOP_LEVEL_PROVIDER = re.compile(r"(?m)^\s*model_provider\s*=")
_SELECTED_TYPES = {"api key": "gemini-api-key", "gateway": "gemini-api-key",
                   "cloud": "vertex-ai", "login": "oauth-personal"}  # fmt: skip


def step_env(runtime: str, home: Path, source: Mapping[str, str], extra: Sequence[str] = ()
             ) -> tuple[dict[str, str], list[str]]:  # fmt: skip
    """The environment of one step of `runtime` with HOME `home`, and the names of the
    variables it took from `source` (recorded on the step; values never are)."""
    cli = CLIS.get(runtime)
    wanted = [*(cli.key_env + cli.endpoint_env if cli else ()), *NETWORK_ENV, *extra]
    passed = sorted(name for name in dict.fromkeys(wanted) if source.get(name))
    fixed = dict(cli.fixed_env) if cli else {}
    if cli is not None and cli.runtime == "codex":
        fixed["CODEX_HOME"] = str(home / cli.config_home)
    fixed["NO_COLOR"] = "1"
    return minimal_env(home, passthrough=passed, extra=fixed, source=source), passed


def prepare_home(runtime: str, home: Path, source: Mapping[str, str]) -> None:
    """Put the CLI's sign-in and settings into the job's HOME: the worker user's files, then
    the operator's template over them, then what a headless run needs."""
    cli = CLIS.get(runtime)
    if cli is None:
        return
    target = home / cli.config_home
    target.mkdir(parents=True, exist_ok=True)
    source_dir = config_dir(cli, source)
    for name in cli.signin_files:
        _copy(source_dir / name, target / name)
    if cli.runtime == "claude":
        _copy_claude_state(claude_state_file(source), home / ".claude.json")
    template = template_dir(cli, source)
    if template is not None and template.is_dir():
        shutil.copytree(template, home, dirs_exist_ok=True, symlinks=False)
    if cli.runtime == "gemini":
        _gemini_settings(cli, target / "settings.json", source)
    elif cli.runtime == "codex":
        _codex_gateway(target / "config.toml", source)


def _copy(source: Path, target: Path) -> None:
    if source.is_file():
        shutil.copyfile(source, target)
        os.chmod(target, 0o600)


def _copy_claude_state(source: Path, target: Path) -> None:
    state = _json(source)
    if state:
        kept = {k: v for k, v in state.items() if k in CLAUDE_STATE_KEYS}
        target.write_text(json.dumps(kept))
        os.chmod(target, 0o600)


def _gemini_settings(cli: AgentCli, path: Path, source: Mapping[str, str]) -> None:
    """gemini refuses a headless run whose settings select no auth type: select the one this
    worker signs in with, unless the settings already chose."""
    settings = _json(path) if path.is_file() else {}
    if settings is None:
        return  # not JSON we can read (comments, say): the operator's, left as it is
    security = settings.setdefault("security", {})
    auth = security.setdefault("auth", {}) if isinstance(security, dict) else None
    if not isinstance(auth, dict) or auth.get("selectedType"):
        return
    selected = _SELECTED_TYPES.get(find_signin(cli, source).kind)
    if selected:
        auth["selectedType"] = selected
        path.write_text(json.dumps(settings, indent=2))


def _codex_gateway(path: Path, source: Mapping[str, str]) -> None:
    """codex's own provider ignores OPENAI_BASE_URL: with one set and no provider chosen, the
    job's config.toml gets a provider for it (the key from OPENAI_API_KEY, else the login)."""
    base = source.get("OPENAI_BASE_URL")
    current = path.read_text() if path.is_file() else ""
    if not base or _TOP_LEVEL_PROVIDER.search(("\n" + current).split("\n[", 1)[0]):
        return
    auth = ('env_key = "OPENAI_API_KEY"' if source.get("OPENAI_API_KEY")
            else "requires_openai_auth = true")  # fmt: skip
    provider = (f'\n[model_providers.{CODEX_PROVIDER}]\nname = "{CODEX_PROVIDER}"\n'
                f"base_url = {json.dumps(base)}\nwire_api = \"responses\"\n{auth}\n")  # fmt: skip
    path.write_text(f'model_provider = "{CODEX_PROVIDER}"\n' + current + provider)


def _json(path: Path) -> Any:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
