"""What this machine can do: the capabilities a worker advertises when none are given, and
what it found of each agent CLI (its path, version and sign-in), said once at its start."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from cairn.worker.agents.clis import CLIS
from cairn.worker.agents.signin import AgentFound, find_agents

TOOLS = ("git", "gh")
AFTER = ("docker",)


def agents_bin(data_dir: Path) -> Path:
    """Where `cairn agents install` puts the CLIs: first on a worker's PATH."""
    return data_dir.resolve() / "agents" / "node_modules" / ".bin"


def probe_capabilities(env: Mapping[str, str]) -> tuple[list[str], dict[str, AgentFound]]:
    """The tools found on PATH, as capability names; each agent runtime whose CLI is there and
    signs in; `shell` when bash is there (steps that are commands); `orchestrator` when the
    operator lets this worker run services' commands (CAIRN_ORCHESTRATOR_WORKER=true); and
    `noop`, which needs nothing. Also what was found of each agent CLI, for the report."""
    path = env.get("PATH")
    agents = find_agents(env)
    found = [tool for tool in TOOLS if shutil.which(tool, path=path)]
    found += [runtime for runtime in CLIS if agents[runtime].usable]
    found += [tool for tool in AFTER if shutil.which(tool, path=path)]
    found += ["shell"] if shutil.which("bash", path=path) else []
    trusted = env.get("CAIRN_ORCHESTRATOR_WORKER", "").lower() in ("1", "true", "yes")
    return [*found, *(["orchestrator"] if trusted else []), "noop"], agents


def report(capabilities: list[str], agents: Mapping[str, AgentFound], probed: bool) -> list[str]:
    """The worker's start lines: per agent runtime what it found or what to do."""
    lines = [found.describe() for found in agents.values()]
    if not probed:
        named = [r for r in capabilities if r in agents and not agents[r].usable]
        lines += [f"{r}: offered as --capabilities says, though it cannot run here (above)"
                  for r in named]  # fmt: skip
    return lines


def parse_capabilities(text: str) -> list[str]:
    """`a, b,c` -> ['a', 'b', 'c'] (lowercased, de-duplicated, order kept)."""
    return list(dict.fromkeys(c.strip().lower() for c in text.split(",") if c.strip()))
