"""Tokens and cost, as a step reports them (`tokens_in` counts every input token, the cached
ones among them; `cost_usd` only when the CLI or an operator's price table gave one), and the
sums of many: a job's over every step of every attempt, a task's over its runs. A cost is never
guessed: a sum counts the steps that had none."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

TOKENS = ("tokens_in", "tokens_cached", "tokens_out")
Usage = dict[str, Any]


def add_usage(total: Usage | None, usage: Usage | None) -> Usage | None:
    """`total` with one step's (or one sum's) usage added; None while nothing was reported."""
    if not usage:
        return total
    out: Usage = dict(total) if total else {**dict.fromkeys(TOKENS, 0), "cost_usd": None,
                                            "steps": 0}  # fmt: skip
    for name in TOKENS:
        out[name] += _count(usage.get(name))
    if "steps" in usage:  # a sum: its steps, and those of them without a cost
        steps, without = _count(usage["steps"]), _count(usage.get("steps_without_cost"))
    else:  # one step's own
        steps, without = 1, int(usage.get("cost_usd") is None)
    out["steps"] += steps
    cost = usage.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        out["cost_usd"] = round((out["cost_usd"] or 0.0) + float(cost), 6)
    if without:
        out["steps_without_cost"] = out.get("steps_without_cost", 0) + without
    return out


def sum_usage(usages: Iterable[Usage | None]) -> Usage | None:
    """The sum of many usages (steps' or jobs'); None when none reported anything."""
    total: Usage | None = None
    for usage in usages:
        total = add_usage(total, usage)
    return total


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
