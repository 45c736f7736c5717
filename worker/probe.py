"""What this machine can do: the capabilities a worker advertises when none are given."""

from __future__ import annotations

import shutil

PROBED = ("git", "gh", "codex", "claude", "gemini", "docker")


def probe_capabilities() -> list[str]:
    """The tools found on PATH, as capability names; `shell` when bash is there (steps that
    are commands); and `noop`, which needs nothing."""
    found = [tool for tool in PROBED if shutil.which(tool)]
    return [*found, *(["shell"] if shutil.which("bash") else []), "noop"]


def parse_capabilities(text: str) -> list[str]:
    """`a, b,c` -> ['a', 'b', 'c'] (lowercased, de-duplicated, order kept)."""
    return list(dict.fromkeys(c.strip().lower() for c in text.split(",") if c.strip()))
