"""Where each agent CLI signs in on this worker, and whether it can: an API key in the
environment, the CLI's own login (its files in the worker user's config folder), a gateway, or
a cloud (Bedrock, Vertex). Read once when the worker starts; a runtime with no CLI or no
sign-in is not advertised, and the report says what to set."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from cairn.worker.agents.clis import CLIS, AgentCli

VERSION_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SignIn:
    """How a CLI signs in here: `kind` (api key, login, gateway, cloud; "" for none) and what
    was found (names and paths, never a value), or, with none, what would do."""

    kind: str
    found: str = ""
    missing: str = ""


@dataclass(frozen=True)
class AgentFound:
    cli: AgentCli
    path: str | None
    version: str | None
    signin: SignIn

    @property
    def usable(self) -> bool:
        return self.path is not None and bool(self.signin.kind)

    def describe(self) -> str:
        """One line for the worker's start, naming what is missing and what to do."""
        name = self.cli.runtime
        unused = "a worker here will not offer it"
        if self.path is None:
            return (f"{name}: no `{self.cli.binary}` on PATH; install it with `cairn agents "
                    f"install {name}` ({self.cli.spec}); {unused}")  # fmt: skip
        head = f"{name}: {self.path} ({self.version or 'version unknown'})"
        if not self.signin.kind:
            return f"{head}; no sign-in found: {self.signin.missing}; {unused}"
        return f"{head}; signs in with {self.signin.kind} ({self.signin.found})"


def config_dir(cli: AgentCli, env: Mapping[str, str]) -> Path:
    """The worker user's sign-in folder for `cli`: CAIRN_<RUNTIME>_CONFIG_DIR, else (codex)
    CODEX_HOME, else ~/.<cli>."""
    given = env.get(f"CAIRN_{cli.runtime.upper()}_CONFIG_DIR")
    if not given and cli.runtime == "codex":
        given = env.get("CODEX_HOME")
    return Path(given) if given else Path(env.get("HOME") or Path.home()) / cli.config_home


def claude_state_file(env: Mapping[str, str]) -> Path:
    """claude's account file: `.claude.json` beside ~/.claude, or inside a config dir given."""
    given = env.get("CAIRN_CLAUDE_CONFIG_DIR")
    return Path(given) / ".claude.json" if given else (
        Path(env.get("HOME") or Path.home()) / ".claude.json")  # fmt: skip


def template_dir(cli: AgentCli, env: Mapping[str, str]) -> Path | None:
    """The operator's folder copied into a job's HOME before each step of this runtime."""
    given = env.get(f"CAIRN_{cli.runtime.upper()}_HOME_TEMPLATE")
    return Path(given) if given else None


def find_signin(cli: AgentCli, env: Mapping[str, str]) -> SignIn:
    """The sign-in this worker gives `cli`, the strongest evidence first."""
    keys = [name for name in cli.key_env if env.get(name)]
    folder = config_dir(cli, env)
    template = template_dir(cli, env)
    home_files = [folder / name for name in cli.signin_files]
    if template is not None:
        home_files += [template / cli.config_home / name for name in cli.signin_files]
    logins = [p for p in home_files if p.is_file() and _is_login(cli, p)]
    if cli.runtime == "claude" and _has_key(claude_state_file(env), "primaryApiKey"):
        logins.append(claude_state_file(env))
    cloud = _cloud(cli, env)
    base = next((n for n in cli.endpoint_env if n.endswith("BASE_URL") and env.get(n)), None)
    if cloud:
        return SignIn("cloud", cloud)
    if base and (keys or logins):
        via = keys[0] if keys else str(logins[0])
        return SignIn("gateway", f"{base} with {via}")
    if keys:
        return SignIn("api key", ", ".join(keys))
    if logins:
        return SignIn("login", ", ".join(str(p) for p in logins))
    if cli.runtime == "codex" and _codex_provider_without_key(folder, template):
        return SignIn("gateway", "config.toml's model provider (it needs no key)")
    return SignIn("", missing=_what_would_do(cli, folder))


def find_agent(cli: AgentCli, env: Mapping[str, str]) -> AgentFound:
    path = shutil.which(cli.binary, path=env.get("PATH") or os.defpath)
    return AgentFound(cli, path, _version(path, env) if path else None, find_signin(cli, env))


def find_agents(env: Mapping[str, str]) -> dict[str, AgentFound]:
    """Every CLI's findings; their version probes side by side (a node CLI takes a second)."""
    with ThreadPoolExecutor(len(CLIS)) as pool:
        found = {runtime: pool.submit(find_agent, cli, env) for runtime, cli in CLIS.items()}
        return {runtime: future.result() for runtime, future in found.items()}


def _version(path: str, env: Mapping[str, str]) -> str | None:
    """What `<cli> --version` prints, in a process group of its own: a CLI that hangs or
    leaves children behind costs at most VERSION_TIMEOUT_S and leaves nothing running."""
    try:
        process = subprocess.Popen([path, "--version"], env=dict(env), text=True,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    except OSError:
        return None
    try:
        out, _ = process.communicate(timeout=VERSION_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        out = None
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # what it started, even when it exited itself
    process.wait()
    lines = [line.strip() for line in (out or "").splitlines() if line.strip()]
    return lines[-1][:80] if process.returncode == 0 and lines else None


def _is_login(cli: AgentCli, path: Path) -> bool:
    """Whether a file of the sign-in folder holds credentials (settings alone do not)."""
    name = path.name
    if cli.runtime == "claude":
        return name == ".credentials.json"
    if cli.runtime == "codex":
        return name == "auth.json"
    if name == ".env":
        return any(line.strip().startswith(("GEMINI_API_KEY=", "GOOGLE_API_KEY="))
                   for line in _read(path).splitlines())  # fmt: skip
    return name == "oauth_creds.json"


def _has_key(path: Path, key: str) -> bool:
    return path.is_file() and f'"{key}"' in _read(path)


def _cloud(cli: AgentCli, env: Mapping[str, str]) -> str:
    if cli.runtime == "claude":
        if _on(env.get("CLAUDE_CODE_USE_BEDROCK")):
            return "Amazon Bedrock (CLAUDE_CODE_USE_BEDROCK)"
        if _on(env.get("CLAUDE_CODE_USE_VERTEX")):
            return "Google Vertex AI (CLAUDE_CODE_USE_VERTEX)"
    if cli.runtime == "gemini" and _on(env.get("GOOGLE_GENAI_USE_VERTEXAI")):
        return "Google Vertex AI (GOOGLE_GENAI_USE_VERTEXAI)"
    return ""


def _codex_provider_without_key(folder: Path, template: Path | None) -> bool:
    """A config.toml whose provider names no env_key and wants no OpenAI sign-in (a local
    gateway that takes anyone)."""
    for config in [folder / "config.toml"] + ([template / ".codex" / "config.toml"]
                                              if template else []):  # fmt: skip
        text = _read(config)
        if "model_provider" in text and "env_key" not in text and (
            "requires_openai_auth = true" not in text
        ):
            return True
    return False


def _what_would_do(cli: AgentCli, folder: Path) -> str:
    if cli.runtime == "claude":
        return (f"set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN with ANTHROPIC_BASE_URL for a "
                f"gateway), run `claude` once and /login so {folder}/.credentials.json exists, "
                "or set CAIRN_CLAUDE_CONFIG_DIR to a folder that holds one")  # fmt: skip
    if cli.runtime == "codex":
        return (f"set OPENAI_API_KEY, run `codex login` so {folder}/auth.json exists, or set "
                "CAIRN_CODEX_CONFIG_DIR (or CODEX_HOME) to a folder that holds one")  # fmt: skip
    return (f"set GEMINI_API_KEY (in the environment or {folder}/.env), sign in with `gemini` "
            f"so {folder}/oauth_creds.json exists, or set GOOGLE_GENAI_USE_VERTEXAI with "
            "GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION")  # fmt: skip


def _on(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
