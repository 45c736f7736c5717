"""`cairn agents`: install the agent CLIs Cairn pins into the data dir (where `cairn up`'s and
`cairn worker`'s PATH finds them first), and say what this machine has of each: the CLI, its
version, and how it signs in."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.worker.agents.clis import CLIS
from cairn.worker.agents.signin import find_agents
from cairn.worker.probe import agents_bin


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    agents = command("agents", run, "install the agent CLIs (claude, codex, gemini) and say "
                     "what this machine has of each")  # fmt: skip
    agents.add_argument("action", choices=["install", "list"], help="install, or list")
    agents.add_argument("which", nargs="?", default="all",
                        choices=[*CLIS, "all"], help="a runtime, or all (the default)")  # fmt: skip


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "install":
        install(settings, [*CLIS] if args.which == "all" else [args.which])
    return show(settings)


def install(settings: Settings, runtimes: list[str]) -> None:
    """npm-install the pinned packages of `runtimes` into <data dir>/agents."""
    npm = shutil.which("npm")
    if npm is None:
        raise CairnError(
            "npm is not on PATH: install Node.js 20 or later with npm (Debian: apt-get install "
            "nodejs npm), then run `cairn agents install` again"
        )
    folder = settings.data_dir.resolve() / "agents"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "package.json"
    wanted: dict[str, Any] = json.loads(manifest.read_text()) if manifest.is_file() else {}
    dependencies = dict(wanted.get("dependencies") or {})
    dependencies.update({CLIS[r].package: CLIS[r].version for r in runtimes})
    manifest.write_text(json.dumps({"name": "cairn-agents", "private": True,
                                    "dependencies": dependencies}, indent=2) + "\n")  # fmt: skip
    specs = " ".join(CLIS[r].spec for r in runtimes)
    print(f"installing {specs} into {folder} ...", file=sys.stderr)
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--save-exact"],
                          cwd=folder, check=False)  # fmt: skip
    if done.returncode != 0:
        raise CairnError(f"npm install failed (exit {done.returncode}); see its output above")


def show(settings: Settings) -> int:
    """Each runtime: the CLI found (the data dir's first), its version and its sign-in."""
    for found in find_agents(_env(settings, os.environ)).values():
        print(found.describe())
    return 0


def agent_lines(settings: Settings, env: Mapping[str, str]) -> list[str]:
    """Per runtime, in a few words: what a worker here would find."""
    lines = []
    for runtime, found in find_agents(_env(settings, env)).items():
        if found.path is None:
            lines.append(f"{runtime} not installed")
        elif not found.signin.kind:
            lines.append(f"{runtime} {found.version or ''} without a sign-in".replace("  ", " "))
        else:
            lines.append(f"{runtime} {found.version or ''} with {found.signin.kind}")
    return lines


def _env(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    bin_dir = agents_bin(settings.data_dir)
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}
