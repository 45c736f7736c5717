"""claude's `--output-format stream-json --verbose`: `system` (init: the session id; api_retry),
`assistant` messages whose parts are text, thinking and tool_use, `user` messages carrying the
tool results, and the `result` (an error, the permissions it refused)."""

from __future__ import annotations

import json
import re
from typing import Any

from cairn.domain.jobs.transcript import (
    EXCERPT_MAX,
    Command,
    ErrorEntry,
    Message,
    Raw,
    Thinking,
    ToolCall,
    ToolResult,
    TranscriptEntry,
    cut,
    one_line,
)
from cairn.worker.agents.transcripts.base import Parser, message_text, text_of

SHELL_TOOLS = ("Bash",)
FILE_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit", "Read")
EDIT_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit")
EXIT_CODE = re.compile(r"Exit code (\d+)")


class ClaudeParser(Parser):
    def __init__(self, *, root: str = "") -> None:
        super().__init__(root=root)
        self.calls: dict[str, tuple[str, dict[str, Any]]] = {}  # tool_use id -> (tool, input)

    def event(self, event: dict[str, Any]) -> list[TranscriptEntry]:
        kind = event.get("type")
        if event.get("session_id"):
            self.session_id = str(event["session_id"])
        if kind == "system":
            if event.get("subtype") == "api_retry":
                status = event.get("error_status") or event.get("error") or "an error"
                return [ErrorEntry(message=f"the model's API answered {status}; claude retries "
                                   f"(attempt {event.get('attempt', '?')})")]  # fmt: skip
            return []  # init: the session id, tools and model
        if kind == "assistant":
            return self._assistant(event["message"].get("content") or [])
        if kind == "user":
            return self._results(event["message"].get("content") or [], event)
        if kind == "result":
            return self._result(event)
        return [Raw(text=cut(json.dumps(event, ensure_ascii=False), EXCERPT_MAX))]

    def _assistant(self, parts: list[Any]) -> list[TranscriptEntry]:
        entries: list[TranscriptEntry] = []
        for part in parts:
            kind = part.get("type")
            if kind == "text" and part.get("text", "").strip():
                entries.append(Message(role="assistant", text=message_text(part["text"])))
            elif kind == "thinking" and part.get("thinking", "").strip():
                entries.append(Thinking(text=message_text(part["thinking"])))
            elif kind == "tool_use":
                tool, given = str(part.get("name", "?")), part.get("input") or {}
                self.calls[str(part.get("id"))] = (tool, given)
                if tool not in SHELL_TOOLS:  # a command is shown once, with its result
                    entries.append(ToolCall(tool=tool, summary=self._summary(tool, given),
                                            call_id=str(part.get("id"))))  # fmt: skip
        return entries

    def _results(self, parts: list[Any], event: dict[str, Any]) -> list[TranscriptEntry]:
        entries: list[TranscriptEntry] = []
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict) or part.get("type") != "tool_result":
                continue
            call_id = str(part.get("tool_use_id"))
            tool, given = self.calls.pop(call_id, ("?", {}))
            output = text_of(part.get("content"))
            failed = bool(part.get("is_error"))
            if tool in SHELL_TOOLS:
                code = EXIT_CODE.search(output)
                status = int(code[1]) if code else (1 if failed else 0)
                entries.append(Command(command=str(given.get("command", "")), exit_status=status,
                                       output=cut(output, EXCERPT_MAX)))  # fmt: skip
            else:
                entries.append(ToolResult(tool=tool, ok=not failed, call_id=call_id,
                                          excerpt=cut(output, EXCERPT_MAX)))  # fmt: skip
        return entries

    def _result(self, event: dict[str, Any]) -> list[TranscriptEntry]:
        for denial in event.get("permission_denials") or []:
            tool = denial.get("tool_name", "a tool") if isinstance(denial, dict) else str(denial)
            given = (denial.get("tool_input") or {}) if isinstance(denial, dict) else {}
            if tool in EDIT_TOOLS:  # a refused command shows as its command's exit status
                self.refused_edits.append(f"{tool} {self._summary(tool, given)}".strip())
        if event.get("is_error") or str(event.get("subtype", "")).startswith("error"):
            said = event.get("result") or event.get("subtype") or "claude reported an error"
            return [ErrorEntry(message=cut(str(said), EXCERPT_MAX))]
        return []

    def _summary(self, tool: str, given: dict[str, Any]) -> str:
        if tool in FILE_TOOLS or "file_path" in given:
            return self.path(given.get("file_path") or given.get("notebook_path") or "")
        for key in ("command", "pattern", "url", "query", "description", "prompt"):
            if given.get(key):
                return one_line(str(given[key]))
        return one_line(json.dumps(given, ensure_ascii=False)) if given else ""
