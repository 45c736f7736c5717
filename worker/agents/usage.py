"""A step's tokens and cost, from its CLI's stream: tokens in (every input token, the cached
ones among them), cached and out; claude's own cost; for codex and gemini a cost from the
operator's price table (CAIRN_PRICES) when the model is in it. A cost is never guessed, and a
step that reported nothing (a failed run's zeros) has no usage at all."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

Prices = Mapping[str, Mapping[str, float]]  # model -> {"in", "cached", "out"} USD per million
_CONFIG_MODEL = re.compile(r'(?m)^\s*model\s*=\s*"([^"]+)"')


def parse_usage(runtime: str, output: str, *, model: str | None = None,
                prices: Prices | None = None,
                before: tuple[int, int, int] | None = None) -> dict[str, Any] | None:  # fmt: skip
    """Usage of one run of `runtime`'s CLI (None when it reported none); `model` is the one
    the step asked for, used to price codex (whose stream does not name it). codex reports
    its thread's total, which a resumed thread carries on: `before` is the thread's total
    before this run (`codex_thread_total` of the run that left it), taken off."""
    events = _json_lines(output)
    if runtime == "claude":
        return _claude(events)
    if runtime == "codex":
        total = codex_thread_total(events)
        if total is None:
            return None
        tokens = tuple(max(0, now - then) for now, then in zip(total, before or (0, 0, 0),
                                                              strict=True))  # fmt: skip
        return _priced(tokens, model, prices)  # type: ignore[arg-type]
    if runtime == "gemini":
        results = [e for e in events if e.get("type") == "result"]
        stats = results[-1].get("stats") if results else None
        if not isinstance(stats, dict):
            return None
        tokens = (_int(stats.get("input_tokens")), _int(stats.get("cached")),
                  _int(stats.get("output_tokens")))  # fmt: skip
        used = [name for name, m in (stats.get("models") or {}).items()
                if isinstance(m, dict) and _int(m.get("total_tokens"))]  # fmt: skip
        return _priced(tokens, used[0] if len(used) == 1 else model, prices)
    return None


def codex_thread_total(output: str | list[dict[str, Any]]) -> tuple[int, int, int] | None:
    """The tokens (in, cached, out) a codex thread has used, as its last turn reported them."""
    events = _json_lines(output) if isinstance(output, str) else output
    turns = [e.get("usage") for e in events if e.get("type") == "turn.completed"]
    usages = [u for u in turns if isinstance(u, dict)]
    if not usages:
        return None
    last = usages[-1]
    return (_int(last.get("input_tokens")), _int(last.get("cached_input_tokens")),
            _int(last.get("output_tokens")))  # fmt: skip


def codex_model(config_toml: str) -> str | None:
    """The model a codex config.toml chooses (its top level, before any table)."""
    found = _CONFIG_MODEL.search(("\n" + config_toml).split("\n[", 1)[0])
    return found.group(1) if found else None


def cost_of(tokens: tuple[int, int, int], model: str | None, prices: Prices | None) -> float | None:
    """USD for `tokens` (in, cached among them, out) at the operator's price of `model`."""
    price = (prices or {}).get(model or "")
    if not price:
        return None
    tokens_in, cached, out = tokens
    cached_price = price.get("cached", price.get("in", 0.0))
    usd = ((tokens_in - cached) * price.get("in", 0.0) + cached * cached_price
           + out * price.get("out", 0.0)) / 1_000_000  # fmt: skip
    return round(usd, 6)


def _claude(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    results = [e for e in events if e.get("type") == "result"]
    if not results or not isinstance(usage := results[-1].get("usage"), dict):
        return None
    cached = _int(usage.get("cache_read_input_tokens"))
    # input_tokens leaves out what was read from or written to the prompt cache.
    tokens_in = _int(usage.get("input_tokens")) + cached + _int(
        usage.get("cache_creation_input_tokens"))  # fmt: skip
    tokens_out = _int(usage.get("output_tokens"))
    if not tokens_in and not tokens_out:
        return None  # a run that failed before any turn reports zeros: it used nothing
    found: dict[str, Any] = {"tokens_in": tokens_in, "tokens_cached": cached,
                             "tokens_out": tokens_out}  # fmt: skip
    cost = results[-1].get("total_cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        found["cost_usd"] = round(float(cost), 6)
    models = results[-1].get("modelUsage")
    if isinstance(models, dict) and len(models) == 1:
        found["model"] = next(iter(models))
    return found


def _priced(tokens: tuple[int, int, int], model: str | None, prices: Prices | None
            ) -> dict[str, Any] | None:  # fmt: skip
    tokens_in, cached, out = tokens
    if not tokens_in and not out:
        return None
    found: dict[str, Any] = {"tokens_in": tokens_in, "tokens_cached": cached, "tokens_out": out}
    if model:
        found["model"] = model
    cost = cost_of(tokens, model, prices)
    if cost is not None:
        found["cost_usd"] = cost
    return found


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _json_lines(output: str) -> list[dict[str, Any]]:
    """The JSON objects among the lines (stderr's lines are mixed in and skipped)."""
    found = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                found.append(value)
    return found
