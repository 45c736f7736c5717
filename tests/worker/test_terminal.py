"""Terminal escapes: stripped from what people read (the live output, a failure's log tail),
even when one is cut across chunks; the step's log file keeps the bytes the CLI printed."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from cairn.streams.keys import Keys
from cairn.streams.output import OutputStream
from cairn.worker.live import LiveOutput
from cairn.worker.redaction import Redactor
from cairn.worker.terminal import EscapeStripper, strip_escapes

COLOURED = "\x1b[31mGemini CLI is not running in a trusted directory.\x1b[0m\n"


def test_colour_cursor_and_title_escapes_go() -> None:
    shown = strip_escapes(COLOURED + "\x1b]0;a title\x07\x1b[2K\rdone\x1b(B\x08 ok\ttab\n")
    assert shown == "Gemini CLI is not running in a trusted directory.\n\rdone ok\ttab\n"


@given(st.integers(1, len(COLOURED) - 1))
def test_an_escape_cut_between_chunks_goes_too(cut: int) -> None:
    stripper = EscapeStripper()
    shown = stripper.feed(COLOURED[:cut]) + stripper.feed(COLOURED[cut:]) + stripper.flush()
    assert shown == strip_escapes(COLOURED)


async def test_the_live_output_is_plain_and_the_log_file_keeps_the_bytes(
    client: aioredis.Redis, keys: Keys, tmp_path: Path
) -> None:
    stream = OutputStream(client, keys)
    job_id = keys.new_id("job", "default")
    live = LiveOutput(stream, job_id, 1, tmp_path / "step-1.log", Redactor(), 1_000_000)
    for at in range(0, len(COLOURED), 7):
        await live.feed(COLOURED[at : at + 7])
    await live.close()
    assert (tmp_path / "step-1.log").read_text() == COLOURED
    sent = "".join(entry.text for entry in await stream.read(job_id))
    assert sent == strip_escapes(COLOURED) and "\x1b" not in live.tail
