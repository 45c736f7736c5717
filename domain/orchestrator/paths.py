"""Which files a run may change: the service's `allowedPaths` globs (`*` within a folder, `**`
across folders, `?` one character; a pattern ending in `/` is everything under that folder),
matched against the repository-relative paths git reports. A path that climbs (`..`), is
absolute or is empty never matches, whatever the globs say."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from posixpath import normpath


def outside(paths: Iterable[str], allowed: Sequence[str]) -> list[str]:
    """The paths that no pattern of `allowed` covers, sorted."""
    return sorted({p for p in paths if not is_allowed(p, allowed)})


def is_allowed(path: str, allowed: Sequence[str]) -> bool:
    if not is_plain(path):
        return False
    return any(_compiled(pattern).fullmatch(path) for pattern in allowed)


def is_plain(path: str) -> bool:
    """A repository-relative path with no `..`, no leading `/` and nothing to normalize."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return False
    return normpath(path) == path and not any(p in ("", ".", "..") for p in path.split("/"))


def check_pattern(pattern: str) -> str | None:
    """Why a glob cannot be one of `allowedPaths`, or None."""
    if not pattern.strip() or pattern != pattern.strip():
        return "must be a non-empty glob without surrounding whitespace"
    if pattern.startswith("/"):
        return "must be relative to the repository (no leading /)"
    if any(part == ".." for part in pattern.split("/")):
        return "must not climb out of the repository (..)"
    return None


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("/"):
        pattern += "**"
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # zero or more folders
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c)))
        i += 1
    return re.compile("".join(out))
