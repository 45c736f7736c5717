"""`cairn tail`'s human format shows what an event says, never what it would do to a terminal."""

from __future__ import annotations

from cairn.api.audit import format_event
from cairn.streams.envelope import Envelope

TRICKS = "\u202e\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\x1b\r\n\x00\x7f\x85\x9b"


def event(actor: str, data: dict[str, object], type_: str = "task.created") -> Envelope:
    return Envelope(id="e1", type=type_, agg="task-00-abc", ver=1, ts="2026-01-01T00:00:00.000Z",
                    actor=actor, corr="c", cause="", schema=1, data=data)  # fmt: skip


def test_the_human_format_escapes_bidi_overrides_and_control_characters() -> None:
    line = format_event(0, event("ann" + TRICKS, {"title": "evil" + TRICKS}, "task." + TRICKS))
    assert not [c for c in line if c in TRICKS], repr(line)
    assert "\\u202e" in line and "\\u001b" in line and "\\u009b" in line
    assert line.count("\n") == 0


def test_the_human_format_keeps_tabs_and_ordinary_text() -> None:
    line = format_event(0, event("zoë\tx", {"title": "Grüße 日本"}))
    assert "zoë\tx" in line and "Grüße 日本" in line


def test_the_json_format_is_unchanged() -> None:
    line = format_event(0, event("ann\u202e", {"title": "x"}), as_json=True)
    assert '"actor":"ann\u202e"' in line
