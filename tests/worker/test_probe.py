"""What a worker offers when it is given no capabilities: the tools on its PATH, and noop."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.worker.probe import parse_capabilities, probe_capabilities


def test_probe_finds_the_tools_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for tool in ("git", "claude"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    (tmp_path / "codex").write_text("not executable")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert probe_capabilities() == ["git", "claude", "noop"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("git, Claude ,git", ["git", "claude"]), (" , ", []), ("noop", ["noop"])],
)
def test_capabilities_are_parsed_lowercased_once_each(text: str, expected: list[str]) -> None:
    assert parse_capabilities(text) == expected
