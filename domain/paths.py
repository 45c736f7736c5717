"""Field paths as a person reads them in an error: `payload.task.steps[0].title`."""

from __future__ import annotations

from collections.abc import Sequence

from cairn.domain.credentials import safe_key


def join_path(root: str, loc: Sequence[int | str]) -> str:
    """`root` and a location such as `("steps", 0, "title")` as `root.steps[0].title`; each key
    shown safely (a secret-looking key redacted, a long one cut short). pydantic's `[key]`
    marker, which stands for the key already in the path, is left out."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":
            path = f"{path}.{safe_key(part)}" if path else safe_key(part)
    return path
