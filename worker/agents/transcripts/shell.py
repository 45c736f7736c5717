"""A `shell` step: its output is the command's own, kept as it came; the transcript is the
command, with its exit status and an excerpt of its output, once it ended."""

from __future__ import annotations

from cairn.domain.jobs.transcript import EXCERPT_MAX, Command, TranscriptEntry
from cairn.worker.agents.transcripts.base import Parser

TAIL = EXCERPT_MAX


class ShellParser(Parser):
    def __init__(self, command: str, *, root: str = "") -> None:
        super().__init__(root=root)
        self.command = command
        self.tail = ""

    def feed(self, chunk: str) -> list[TranscriptEntry]:
        self.tail = (self.tail + chunk)[-TAIL * 2 :]
        return []

    def end(self, exit_status: int | None) -> list[TranscriptEntry]:
        output = self.tail[-TAIL:]
        if len(self.tail) > TAIL:
            output = "…" + output
        return [Command(command=self.command, exit_status=exit_status, output=output)]
