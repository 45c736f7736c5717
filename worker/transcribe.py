"""A step's transcript on its way out: the runtime's parser fed the step's redacted output as it
comes, each entry numbered, written to `transcript/step-N.jsonl` (an artifact once the step
ends) and sent live on the job's output stream (stream `transcript`, beside the raw output), and
at the end what only the worker knows: the files the step changed (from its diff) and its
usage. docs: domain/jobs/transcript.py."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from cairn.domain.errors import CairnError
from cairn.domain.jobs.transcript import (
    HUNK_MAX_LINES,
    TEXT_MAX,
    FileEdit,
    Message,
    TranscriptEntry,
    UsageEntry,
    cut,
    encode,
    numbered,
)
from cairn.streams.output import OutputChunk, OutputStream
from cairn.worker.agents.transcripts import Parser, parser_for

log = logging.getLogger("cairn.worker")
STREAM = "transcript"  # the output stream's name for transcript entries
_FILE_HEADER = re.compile(r"^diff --git a/(.*) b/(.*)$")


class StepTranscript:
    """One step's transcript: `feed` it the redacted output, `finish` it when the process ended,
    `end` it with the step's diff and usage; `entries` holds what it wrote."""

    def __init__(self, runtime: str, step: int, path: Path, *, command: str = "",
                 root: str = "", attempt: int = 0) -> None:  # fmt: skip
        self.parser: Parser = parser_for(runtime, command=command, root=root)
        self.runtime, self.step, self.attempt = runtime, step, attempt
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("wb")
        self.entries: list[TranscriptEntry] = []
        self.unsent: list[OutputChunk] = []  # live entries the output's next batch takes

    @property
    def session_id(self) -> str | None:
        return self.parser.session_id

    @property
    def refused_edits(self) -> list[str]:
        return self.parser.refused_edits

    def prompt(self, text: str) -> None:
        """The prompt the agent got, as the conversation's first message."""
        if self.runtime != "shell" and text.strip():
            self.add([Message(role="user", text=cut(text.strip(), TEXT_MAX))])

    def note(self, role: str, text: str) -> None:
        self.add([Message(role=role, text=cut(text, TEXT_MAX))])

    def feed(self, redacted: str) -> None:
        self.add(self.parser.feed(redacted))

    def finish(self, exit_status: int | None) -> None:
        self.add(self.parser.finish(exit_status))

    def add(self, entries: list[TranscriptEntry]) -> None:
        if not entries:
            return
        placed = numbered(entries, self.step, len(self.entries), self.attempt)
        self.entries += placed
        lines = [encode(e) for e in placed]
        self._file.write(b"".join(line + b"\n" for line in lines))
        self._file.flush()
        self.unsent += [OutputChunk(line.decode(), step=self.step, stream=STREAM)
                        for line in lines]  # fmt: skip

    def take_unsent(self) -> list[OutputChunk]:
        taken, self.unsent = self.unsent, []
        return taken

    def end(self, patch: str, numstat: list[tuple[str, int | None, int | None]],
            usage: dict[str, Any] | None) -> None:  # fmt: skip
        """The step's file edits (its diff, a file each) and its usage, then the file closes."""
        hunks = split_patch(patch)
        edits: list[TranscriptEntry] = []
        for path, added, removed in numstat:
            hunk = hunks.get(path)
            small = hunk is not None and hunk.count("\n") <= HUNK_MAX_LINES
            edits.append(FileEdit(path=path, added=added, removed=removed,
                                  hunk=hunk if small else None))  # fmt: skip
        self.add(edits)
        if usage:
            self.add([UsageEntry(tokens_in=int(usage.get("tokens_in") or 0),
                                 tokens_cached=int(usage.get("tokens_cached") or 0),
                                 tokens_out=int(usage.get("tokens_out") or 0),
                                 cost_usd=usage.get("cost_usd"))])  # fmt: skip
        self._file.close()

    async def send(self, output: OutputStream, job_id: str) -> None:
        """What the live batches have not sent (the end's entries)."""
        chunks = self.take_unsent()
        if not chunks:
            return
        try:
            await output.append(job_id, chunks)
        except CairnError as e:
            # The live view misses them; the transcript's artifact (the record) has them.
            log.warning("transcript of %s not sent live: %s", job_id, e.message)


def split_patch(patch: str) -> dict[str, str]:
    """A unified diff cut into each file's part, by the path it has after the change."""
    parts: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in patch.splitlines(keepends=True):
        header = _FILE_HEADER.match(line.rstrip("\n"))
        if header:
            if current is not None:
                parts[current] = "".join(lines)
            current, lines = header[2], [line]
        elif current is not None:
            lines.append(line)
    if current is not None:
        parts[current] = "".join(lines)
    return parts
