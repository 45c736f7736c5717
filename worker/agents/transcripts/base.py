"""What every runtime's parser shares: lines out of chunks, JSON or raw, and the state a step
keeps (the session id, refused edits, tool calls waiting for their results)."""

from __future__ import annotations

import json
from typing import Any

from cairn.domain.jobs.transcript import (
    EXCERPT_MAX,
    TEXT_MAX,
    Raw,
    TranscriptEntry,
    cut,
)

LINE_MAX = 1_000_000  # a line longer than this is cut into raw entries as it comes


class Parser:
    """Feeds lines to `event` (a JSON object) or keeps them raw; subclasses read their CLI's
    events. `session_id` and `refused_edits` are what the stream said of them so far."""

    def __init__(self, *, root: str = "") -> None:
        self.root = root.rstrip("/")
        self._session_id: str | None = None
        self.sessions_seen = 0  # how often the stream named its session (each run of the CLI)
        self.refused_edits: list[str] = []
        self._partial = ""

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @session_id.setter
    def session_id(self, value: str | None) -> None:
        self._session_id = value
        self.sessions_seen += 1

    def feed(self, chunk: str) -> list[TranscriptEntry]:
        """The entries `chunk` completes (a line cut at its end waits for the rest)."""
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        if len(self._partial) > LINE_MAX:
            lines.append(self._partial)
            self._partial = ""
        entries: list[TranscriptEntry] = []
        for line in lines:
            entries += self.line(line)
        return entries

    def finish(self, exit_status: int | None = None) -> list[TranscriptEntry]:
        """What is left once the process ended: a last line without its newline, and whatever
        the runtime's parser held back."""
        entries = self.line(self._partial) if self._partial else []
        self._partial = ""
        return entries + self.end(exit_status)

    def line(self, line: str) -> list[TranscriptEntry]:
        stripped = line.strip()
        if not stripped:
            return []
        if stripped.startswith("{"):
            try:
                value = json.loads(stripped)
            except ValueError:
                value = None
            if isinstance(value, dict):
                try:
                    return self.event(value)
                except (KeyError, TypeError, ValueError, AttributeError, IndexError):
                    pass  # an event shaped otherwise than expected: kept as it came
        return [Raw(text=cut(line.rstrip(), EXCERPT_MAX))]

    def event(self, event: dict[str, Any]) -> list[TranscriptEntry]:
        """The entries of one JSON event; the base knows none."""
        return [Raw(text=cut(json.dumps(event, ensure_ascii=False), EXCERPT_MAX))]

    def end(self, exit_status: int | None) -> list[TranscriptEntry]:
        return []

    def path(self, value: Any) -> str:
        """A path as the checkout names it (the workspace's own prefix left out)."""
        text = str(value or "")
        if self.root and text.startswith(self.root + "/"):
            return text[len(self.root) + 1 :]
        return text


def text_of(value: Any) -> str:
    """Text from what a CLI puts in a content field: a string, or a list of parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(text_of(part.get("text", "")) if isinstance(part, dict) else str(part)
                         for part in value)  # fmt: skip
    if isinstance(value, dict):
        return str(value.get("text") or value.get("output") or "")
    return "" if value is None else str(value)


def message_text(text: str) -> str:
    return cut(text.strip(), TEXT_MAX)


__all__ = ["LINE_MAX", "Parser", "message_text", "text_of"]
