"""A step's output on its way out: redacted as it comes, written whole to the step's log file
(cut with a marker past the artifact cap; its bytes as the CLI printed them), and sent live,
batched and without terminal escapes, to the job's output stream. The live stream is for
watching; the log file is the record. With a transcript (worker/transcribe.py) the same text
feeds its parser, and its entries ride in the same batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from cairn.domain.errors import CairnError
from cairn.streams.lifetime import wait_for_stop
from cairn.streams.output import OutputChunk, OutputStream
from cairn.worker.redaction import Redactor
from cairn.worker.terminal import EscapeStripper
from cairn.worker.transcribe import StepTranscript

log = logging.getLogger("cairn.worker")
BATCH_S = 0.3  # a batch goes out at least this often while output comes
BATCH_BYTES = 8 * 1024  # ... or as soon as it holds this much
TAIL_CHARS = 256 * 1024
QUIET_S = 0.25  # output paused this long: the redactor lets go of the lines it held


class LiveOutput:
    """One step's output: `feed` it chunks as the process prints them, `close` it at the end."""

    def __init__(self, stream: OutputStream, job_id: str, step: int, log_path: Path,
                 redactor: Redactor, max_bytes: int,
                 transcript: StepTranscript | None = None,
                 terminal: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.stream, self.job_id, self.step = stream, job_id, step
        self.transcript = transcript
        self.terminal = terminal  # what a person at the terminal sees (redacted, escapes kept)
        self.redact = redactor.stream()
        self.readable = EscapeStripper()
        self.max_bytes = max_bytes
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._file = log_path.open("w", encoding="utf-8")
        self._written = 0
        self._seen = 0
        self._cut = False
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._sender = asyncio.create_task(self._send_batches())
        self.tail = ""  # the last 256 KB, without escapes: an error's log tail, a cut log's end
        self._fed_at = 0.0
        self._quiet: asyncio.TimerHandle | None = None

    async def feed(self, chunk: str) -> None:
        """Take a chunk of raw output (it is redacted here, before it goes anywhere). When the
        output pauses, what the redactor may let go of goes out (worker/redaction.py)."""
        self._emit(self.redact.feed(chunk))
        loop = asyncio.get_running_loop()
        self._fed_at = loop.time()
        if self._quiet is None:
            self._quiet = loop.call_later(QUIET_S, self._on_quiet)

    def _on_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        waited = loop.time() - self._fed_at
        if waited < QUIET_S and not self._closing:
            self._quiet = loop.call_later(QUIET_S - waited, self._on_quiet)
            return
        self._quiet = None
        if not self._closing:
            self._emit(self.redact.release())

    def settle(self) -> int:
        """Between two runs of the CLI in one step (an operator's message resumed it): what the
        first left held back goes out; the log's size now (where the next one's starts)."""
        self._emit(self.redact.flush())
        self._file.flush()
        return self._written

    def text_since(self, offset: int) -> str:
        """The redacted log from `offset` (of `settle`); the tail when the log was cut."""
        if self._cut:
            return self.tail
        self._file.flush()
        with self.log_path.open("rb") as reader:
            reader.seek(offset)
            return reader.read().decode(errors="replace")

    @property
    def cut(self) -> bool:
        """Whether the log file was cut at the artifact cap."""
        return self._cut

    async def close(self) -> None:
        """Flush what is held back, send the last batch, close the log file."""
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None
        self._emit(self.redact.flush(), final=True)
        self._closing = True
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender
        if self._cut:
            self._file.write(f"\n[cairn: log cut at {self.max_bytes} of {self._seen} bytes]\n")
        self._file.close()

    def _emit(self, text: str, final: bool = False) -> None:
        if not text and not final:
            return
        data = text.encode()
        self._seen += len(data)
        room = self.max_bytes - self._written
        if room > 0:
            part = data[:room].decode(errors="ignore") if len(data) > room else text
            self._file.write(part)
            self._written += len(part.encode())
        if len(data) > room:
            self._cut = True
        if self.terminal is not None and text:
            self.terminal(text)
        shown = self.readable.feed(text) + (self.readable.flush() if final else "")
        if self.transcript is not None and shown:
            self.transcript.feed(shown)
        if not shown:
            return
        self.tail = (self.tail + shown)[-TAIL_CHARS:]
        self._pending.append(shown)
        self._pending_bytes += len(shown.encode())
        if self._pending_bytes >= BATCH_BYTES:
            self._wake.set()

    async def _send_batches(self) -> None:
        while True:
            await wait_for_stop(self._wake, BATCH_S)
            self._wake.clear()
            entries = self.transcript.take_unsent() if self.transcript is not None else []
            if self._pending or entries:
                batch, self._pending, self._pending_bytes = "".join(self._pending), [], 0
                await self._send(batch, entries)
            if self._closing and not self._pending:
                return

    async def _send(self, text: str, entries: list[OutputChunk]) -> None:
        chunks = ([OutputChunk(text, step=self.step)] if text else []) + entries
        try:
            await self.stream.append(self.job_id, chunks)
        except CairnError as e:
            # The live view misses this batch; the log file (the record) has it.
            log.warning("live output of %s not sent: %s", self.job_id, e.message)
