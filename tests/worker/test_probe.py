"""What a worker offers when it is given no capabilities: the tools on its PATH, each agent CLI
that is there and signs in, shell and noop; and what it says of each agent at its start."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.worker.probe import parse_capabilities, probe_capabilities, report


def tools(folder: Path, *names: str) -> None:
    for tool in names:
        (folder / tool).write_text('#!/bin/sh\n[ "$1" = --version ] && echo "9.9.9 (test)"\n')
        (folder / tool).chmod(0o755)


def test_probe_finds_the_tools_and_the_agents_that_sign_in(tmp_path: Path) -> None:
    tools(tmp_path, "git", "claude", "gemini", "bash")
    (tmp_path / "codex").write_text("not executable")
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path / "home"), "ANTHROPIC_API_KEY": "k"}
    capabilities, agents = probe_capabilities(env)
    # gemini is installed but signs in nowhere: not offered, and the report says what to set.
    assert capabilities == ["git", "claude", "shell", "noop"]
    assert agents["claude"].version == "9.9.9 (test)"
    lines = report(capabilities, agents, probed=True)
    assert any(line.startswith("claude: ") and "api key (ANTHROPIC_API_KEY)" in line
               for line in lines)  # fmt: skip
    assert any("gemini: " in line and "no sign-in found" in line and "GEMINI_API_KEY" in line
               for line in lines)  # fmt: skip
    assert any("codex: no `codex` on PATH" in line and "cairn agents install codex" in line
               for line in lines)  # fmt: skip


def test_a_login_file_signs_an_agent_in(tmp_path: Path) -> None:
    tools(tmp_path, "codex")
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "auth.json").write_text('{"OPENAI_API_KEY": "from-codex-login"}')
    capabilities, agents = probe_capabilities({"PATH": str(tmp_path), "HOME": str(home)})
    assert "codex" in capabilities and agents["codex"].signin.kind == "login"


def test_capabilities_given_are_kept_and_the_report_says_what_cannot_run(tmp_path: Path) -> None:
    _, agents = probe_capabilities({"PATH": str(tmp_path), "HOME": str(tmp_path)})
    lines = report(["claude", "git"], agents, probed=False)
    assert "claude: offered as --capabilities says, though it cannot run here (above)" in lines


@pytest.mark.parametrize(
    ("text", "expected"),
    [("git, Claude ,git", ["git", "claude"]), (" , ", []), ("noop", ["noop"])],
)
def test_capabilities_are_parsed_lowercased_once_each(text: str, expected: list[str]) -> None:
    assert parse_capabilities(text) == expected
