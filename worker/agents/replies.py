"""What the agent said last, from its CLI's stream: claude's result, codex's last agent message,
gemini's last assistant message (its deltas joined). For the step's event and whoever follows
the job; the whole conversation is the step's log."""

from __future__ import annotations

from typing import Any

import orjson

MAX_CHARS = 4000


def final_message(runtime: str, output: str) -> str | None:
    """The agent's last words in `output`, cut to MAX_CHARS; None when it said nothing."""
    events = _json_lines(output)
    said: str | None = None
    if runtime == "claude":
        results = [e for e in events if e.get("type") == "result" and not e.get("is_error")]
        said = str(results[-1].get("result") or "") if results else None
    elif runtime == "codex":
        messages = [e["item"] for e in events if e.get("type") == "item.completed"
                    and isinstance(e.get("item"), dict)
                    and e["item"].get("type") == "agent_message"]  # fmt: skip
        said = str(messages[-1].get("text") or "") if messages else None
    elif runtime == "gemini":
        parts: list[str] = []
        for e in events:
            if e.get("type") in ("tool_use", "tool_result"):
                parts = []  # what it said before its last tool is not its last word
            elif e.get("type") == "message" and e.get("role") == "assistant":
                parts.append(str(e.get("content") or ""))
        said = "".join(parts) or None
    said = (said or "").strip()
    if not said:
        return None
    return said if len(said) <= MAX_CHARS else said[: MAX_CHARS - 1] + "…"


def _json_lines(output: str) -> list[dict[str, Any]]:
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
