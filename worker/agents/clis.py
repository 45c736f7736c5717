"""The agent CLIs Cairn runs, as facts: the npm package and the version Cairn pins, the binary,
where each keeps its sign-in, the variables that sign it in or point it at an endpoint, and
what it needs to run headless. Checked against the pinned versions (2026-12):

- claude (@anthropic-ai/claude-code): `ANTHROPIC_BASE_URL` (a gateway), `ANTHROPIC_API_KEY` or
  `ANTHROPIC_AUTH_TOKEN`, a login in `~/.claude/.credentials.json` (+ `~/.claude.json`), or
  Bedrock / Vertex (`CLAUDE_CODE_USE_BEDROCK`, `CLAUDE_CODE_USE_VERTEX`); offline it wants
  `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`; `CLAUDE_CODE_MAX_RETRIES` caps its own retries.
- codex (@openai/codex): `CODEX_HOME` holds `auth.json` (`codex login`) and `config.toml` (a
  `model_provider` with `base_url` ending in `/v1`, `wire_api = "responses"`, `env_key` or
  `requires_openai_auth`); `OPENAI_API_KEY`. Its own sandbox needs a TMPDIR outside /tmp for
  its helper links, which the job's HOME gives it.
- gemini (@google/gemini-cli): `GEMINI_API_KEY` (also read from `~/.gemini/.env`),
  `GOOGLE_GEMINI_BASE_URL`, Vertex (`GOOGLE_GENAI_USE_VERTEXAI`, `GOOGLE_CLOUD_*`) or a Google
  login (`~/.gemini/oauth_creds.json`). Headless it refuses to run unless settings select an
  auth type (`security.auth.selectedType`, exit 41) and the folder is trusted
  (`GEMINI_CLI_TRUST_WORKSPACE=true`, exit 55).
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.domain.jobs.kinds import AGENT_RUNTIMES

# Proxies and certificate authorities: every CLI reads them, under both spellings.
NETWORK_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy",
               "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS")  # fmt: skip


@dataclass(frozen=True)
class AgentCli:
    runtime: str
    package: str
    version: str  # pinned: `cairn agents install` and the tests install exactly this
    binary: str
    config_home: str  # the worker user's sign-in folder, under HOME (CAIRN_<RUNTIME>_CONFIG_DIR)
    signin_files: tuple[str, ...]  # in it: credentials and settings, never the history
    key_env: tuple[str, ...]  # variables that sign the CLI in by themselves
    endpoint_env: tuple[str, ...]  # variables that point it at an endpoint, a cloud or a region
    fixed_env: tuple[tuple[str, str], ...]  # what Cairn sets for a headless run

    @property
    def spec(self) -> str:
        """The npm install spec."""
        return f"{self.package}@{self.version}"

    @property
    def capability(self) -> str:
        return self.runtime


CLAUDE = AgentCli(
    runtime="claude",
    package="@anthropic-ai/claude-code",
    version="2.1.197",
    binary="claude",
    config_home=".claude",
    signin_files=(".credentials.json", "settings.json"),
    key_env=("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
    endpoint_env=(
        "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL",
        "ANTHROPIC_CUSTOM_HEADERS", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX",
        "ANTHROPIC_BEDROCK_BASE_URL", "ANTHROPIC_VERTEX_BASE_URL", "ANTHROPIC_VERTEX_PROJECT_ID",
        "CLOUD_ML_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ),
    fixed_env=(("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"), ("DISABLE_AUTOUPDATER", "1")),
)  # fmt: skip

CODEX = AgentCli(
    runtime="codex",
    package="@openai/codex",
    version="0.171.0",
    binary="codex",
    config_home=".codex",
    signin_files=("auth.json", "config.toml"),
    key_env=("OPENAI_API_KEY", "CODEX_API_KEY", "CODEX_ACCESS_TOKEN"),
    endpoint_env=("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
                  "AZURE_OPENAI_API_KEY"),
    fixed_env=(),
)

GEMINI = AgentCli(
    runtime="gemini",
    package="@google/gemini-cli",
    version="0.61.0",
    binary="gemini",
    config_home=".gemini",
    signin_files=("oauth_creds.json", "google_accounts.json", "settings.json", ".env"),
    key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    endpoint_env=(
        "GOOGLE_GEMINI_BASE_URL", "GOOGLE_VERTEX_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_USE_GCA", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ),
    # The job's checkout is trusted; no relaunch of itself to raise node's heap (a second
    # start of its 72 MB bundle: half a second of every run, and of every steered turn).
    fixed_env=(("GEMINI_CLI_TRUST_WORKSPACE", "true"), ("GEMINI_CLI_NO_RELAUNCH", "true")),
)  # fmt: skip

CLIS: dict[str, AgentCli] = {cli.runtime: cli for cli in (CLAUDE, CODEX, GEMINI)}
# The contract's agent runtimes are these CLIs (tests/worker/agents/test_clis.py).
__all__ = ["AGENT_RUNTIMES", "CLIS", "NETWORK_ENV", "AgentCli"]
