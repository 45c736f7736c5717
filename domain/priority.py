"""Priorities: integers, higher runs first; a few names for the common ones."""

from __future__ import annotations

PRIORITY_NAMES = {"critical": 3, "high": 2, "medium": 1, "low": 0}
PRIORITY_MIN, PRIORITY_MAX = -1_000_000, 1_000_000


def parse_priority(value: object) -> int:
    """An int in range, or one of the names; ValueError with what is accepted."""
    if isinstance(value, bool):
        raise ValueError("priority must be an integer or one of critical, high, medium, low")
    if isinstance(value, str) and value.strip().lower() in PRIORITY_NAMES:
        return PRIORITY_NAMES[value.strip().lower()]
    if isinstance(value, int) and PRIORITY_MIN <= value <= PRIORITY_MAX:
        return value
    raise ValueError(
        f"priority must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX} "
        "or one of critical, high, medium, low"
    )


def priority_sort_key(priority: int) -> str:
    """A fixed-width string that sorts higher priorities first."""
    return f"{PRIORITY_MAX - priority:07d}"
