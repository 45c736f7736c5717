"""How deep and how large anything a client sends may be: the limits in one place.

Each limit is far above honest use and far below what would hurt: orjson refuses to write
more than 255 levels (a deeper spec would break every read of its board), and a list page
holding a few large documents must not grow to tens of megabytes.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 32  # levels of JSON objects and arrays; a request body is level 1
MAX_SPEC_BYTES = 65_536  # a task's free-form `spec`, as compact JSON
MAX_PAYLOAD_BYTES = 262_144  # a job's payload, as compact JSON
MAX_PAGE_BYTES = 1_048_576  # a list page ends before its items pass this (one item at least)
MAX_PAGE_ITEMS = 500  # `limit` on a list page
MAX_TITLE = 300  # a task's, a step's or a pull request's title
MAX_DESCRIPTION = 20_000  # a task's description; a quick run's prompt
MAX_INSTRUCTIONS = 100_000  # a job's (or one of its steps') instructions
MAX_REASON = 2_000  # why a task moved, why a job was cancelled
MAX_ID_ECHO = 64  # characters of a malformed id that an answer may repeat

Loc = list[str | int]


def too_deep(value: Any, limit: int = MAX_DEPTH) -> Loc | None:
    """Where `value` (level 1) first nests an object or array below level `limit`, else None.

    Iterative, so a hostile depth cannot exhaust the stack.
    """
    stack: list[tuple[Any, Loc]] = [(value, [])]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, dict):
            children: Any = node.items()
        elif isinstance(node, list | tuple):
            children = enumerate(node)
        else:
            continue
        if len(loc) >= limit:
            return loc
        # Reversed, so the first child is looked at first and the path named is the first.
        stack.extend((child, [*loc, key]) for key, child in reversed(list(children)))
    return None


def depth_reason(limit: int = MAX_DEPTH) -> str:
    return f"nested too deeply: at most {limit} levels of objects and arrays are accepted"
