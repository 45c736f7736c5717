"""gemini's `--output-format stream-json`: `init` (the session id), `message` (the prompt, and
the assistant's text in deltas, joined here into one message), `tool_use` and `tool_result`
matched by id, `error` and the `result`."""

from __future__ import annotations

import json
from typing import Any

from cairn.domain.jobs.transcript import (
    EXCERPT_MAX,
    Command,
    ErrorEntry,
    Message,
    Raw,
    ToolCall,
    ToolResult,
    TranscriptEntry,
    cut,
    one_line,
)
from cairn.worker.agents.transcripts.base import Parser, message_text, text_of

SHELL_TOOLS = ("run_shell_command",)
WRITE_TOOLS = ("write_file", "replace", "edit")
EXIT_CODE = ("Exit Code:", "exit code:")


class GeminiParser(Parser):
    def __init__(self, *, root: str = "") -> None:
        super().__init__(root=root)
        self.calls: dict[str, tuple[str, dict[str, Any]]] = {}
        self.said: list[str] = []  # the assistant's deltas not yet shown

    def event(self, event: dict[str, Any]) -> list[TranscriptEntry]:
        kind = event.get("type")
        if kind == "message" and event.get("role") == "assistant":
            self.said.append(str(event.get("content", "")))
            return []
        entries = self._said()
        if kind == "init":
            self.session_id = str(event.get("session_id") or "") or None
        elif kind == "message":
            pass  # the prompt, which the worker shows itself
        elif kind == "tool_use":
            tool, given = str(event.get("tool_name", "?")), event.get("parameters") or {}
            self.calls[str(event.get("tool_id"))] = (tool, given)
            if tool not in SHELL_TOOLS:
                entries.append(ToolCall(tool=tool, summary=self._summary(given),
                                        call_id=str(event.get("tool_id"))))  # fmt: skip
        elif kind == "tool_result":
            entries += self._result(event)
        elif kind == "error":
            entries.append(ErrorEntry(message=cut(str(event.get("message") or
                                                      json.dumps(event)), EXCERPT_MAX)))
        elif kind == "result":
            if event.get("status") not in (None, "success"):
                said = (event.get("error") or {}).get("message") if isinstance(
                    event.get("error"), dict) else event.get("status")  # fmt: skip
                entries.append(ErrorEntry(message=cut(str(said), EXCERPT_MAX)))
        else:
            entries.append(Raw(text=cut(json.dumps(event, ensure_ascii=False), EXCERPT_MAX)))
        return entries

    def end(self, exit_status: int | None) -> list[TranscriptEntry]:
        return self._said()

    def _said(self) -> list[TranscriptEntry]:
        text = "".join(self.said).strip()
        self.said = []
        return [Message(role="assistant", text=message_text(text))] if text else []

    def _result(self, event: dict[str, Any]) -> list[TranscriptEntry]:
        call_id = str(event.get("tool_id"))
        tool, given = self.calls.pop(call_id, ("?", {}))
        ok = event.get("status") == "success"
        output = text_of(event.get("output")) or text_of((event.get("error") or {}).get(
            "message") if isinstance(event.get("error"), dict) else event.get("error"))
        if not ok and tool in WRITE_TOOLS and "not found" in output:  # its write tools dropped
            self.refused_edits.append(f"{tool} {self._summary(given)}".strip())
        if tool in SHELL_TOOLS:
            status = 0 if ok else 1
            for marker in EXIT_CODE:
                if marker in output:
                    tail = output.split(marker, 1)[1].strip().split()[0:1]
                    status = int(tail[0]) if tail and tail[0].lstrip("-").isdigit() else status
            return [Command(command=str(given.get("command", "")), exit_status=status,
                            output=cut(output, EXCERPT_MAX))]  # fmt: skip
        return [ToolResult(tool=tool, ok=ok, call_id=call_id, excerpt=cut(output, EXCERPT_MAX))]

    def _summary(self, given: dict[str, Any]) -> str:
        for key in ("file_path", "absolute_path", "path", "dir_path"):
            if given.get(key):
                return self.path(given[key])
        for key in ("command", "pattern", "query", "url", "prompt"):
            if given.get(key):
                return one_line(str(given[key]))
        return one_line(json.dumps(given, ensure_ascii=False)) if given else ""
