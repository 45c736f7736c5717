"""codex's `exec --json`: `thread.started` (the thread id: its session), items started and
completed (agent_message, reasoning, command_execution, file_change, mcp_tool_call, web_search,
todo_list, error), `turn.completed` with the turn's usage, `turn.failed` and `error`."""

from __future__ import annotations

import json
import shlex
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

READ_ONLY = "blocked by read-only sandbox"
QUIET = ("turn.started", "turn.completed", "item.started", "item.updated")


class CodexParser(Parser):
    def event(self, event: dict[str, Any]) -> list[TranscriptEntry]:
        kind = event.get("type")
        if kind == "thread.started":
            self.session_id = str(event.get("thread_id") or "") or None
            return []
        if kind in QUIET:
            return []  # a command is shown once it completed; the usage is the worker's
        if kind == "item.completed":
            return self._item(event["item"])
        if kind == "turn.failed":
            return [ErrorEntry(message=cut(text_of((event.get("error") or {}).get("message")),
                                           EXCERPT_MAX))]  # fmt: skip
        if kind == "error":
            return [ErrorEntry(message=cut(str(event.get("message", "")), EXCERPT_MAX))]
        return [Raw(text=cut(json.dumps(event, ensure_ascii=False), EXCERPT_MAX))]

    def _item(self, item: dict[str, Any]) -> list[TranscriptEntry]:
        kind = item.get("type")
        if kind == "agent_message":
            return [Message(role="assistant", text=message_text(str(item.get("text", ""))))]
        if kind == "reasoning":
            return [Thinking(text=message_text(str(item.get("text", ""))))]
        if kind == "command_execution":
            output = str(item.get("aggregated_output") or "")
            if READ_ONLY in output:
                self.refused_edits.append(one_line(unwrap(str(item.get("command", "")))))
            code = item.get("exit_code")
            return [Command(command=unwrap(str(item.get("command", ""))),
                            exit_status=code if isinstance(code, int) else None,
                            output=cut(output, EXCERPT_MAX))]  # fmt: skip
        if kind == "file_change":
            changes = item.get("changes") or []
            summary = ", ".join(f"{c.get('kind', 'update')} {self.path(c.get('path'))}"
                                for c in changes if isinstance(c, dict))  # fmt: skip
            entries: list[TranscriptEntry] = [ToolCall(tool="apply_patch", summary=summary,
                                                       call_id=str(item.get("id")))]  # fmt: skip
            if item.get("status") == "failed":
                entries.append(ToolResult(tool="apply_patch", ok=False, call_id=str(item["id"]),
                                          excerpt="the patch was not applied"))  # fmt: skip
            return entries
        if kind == "mcp_tool_call":
            tool = f"{item.get('server', '?')}.{item.get('tool', '?')}"
            ok = item.get("status") != "failed"
            said = item.get("result") if ok else item.get("error")
            return [ToolCall(tool=tool, summary=one_line(json.dumps(item.get("arguments") or {})),
                             call_id=str(item.get("id"))),
                    ToolResult(tool=tool, ok=ok, call_id=str(item.get("id")),
                               excerpt=cut(text_of(said), EXCERPT_MAX))]  # fmt: skip
        if kind == "web_search":
            return [ToolCall(tool="web_search", summary=one_line(str(item.get("query", ""))))]
        if kind == "todo_list":
            items = item.get("items") or []
            done = sum(1 for i in items if isinstance(i, dict) and i.get("completed"))
            return [ToolCall(tool="todo_list", summary=f"{done} of {len(items)} done")]
        if kind == "error":
            said = str(item.get("message", ""))
            if READ_ONLY in said:
                self.refused_edits.append(one_line(said))
            return [ErrorEntry(message=cut(said, EXCERPT_MAX))]
        return [Raw(text=cut(json.dumps(item, ensure_ascii=False), EXCERPT_MAX))]


def unwrap(command: str) -> str:
    """codex runs `bash -lc '<the command>'`: the command as the agent wrote it."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if len(words) == 3 and words[0].endswith(("/bash", "/sh", "/zsh", "bash", "sh")) \
            and words[1] in ("-lc", "-c"):  # fmt: skip
        return words[2]
    return command
