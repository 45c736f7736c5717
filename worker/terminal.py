"""What a terminal would act on rather than show: colour and cursor escapes (CSI, OSC), the
charset switches, and stray control characters. Stripped from what people read (failure
messages, log tails, the live output); the step's log artifact keeps the raw bytes."""

from __future__ import annotations

import re

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-byte escapes, and control
# characters but tab, newline and carriage return; an escape cut at a chunk's end is held back
# by the caller's line buffering or left as a lone ESC, which goes too.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[()][A-Za-z0-9]"
    r"|\x1b[@-Z\\-_]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]"
    r"|\x1b"
)


class EscapeStripper:
    """strip_escapes over a stream of chunks: an escape cut at a chunk's end is held back
    until the next chunk completes it."""

    HOLD = 64  # an escape longer than this is not one we would hold for

    def __init__(self) -> None:
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk
        cut = text.rfind("\x1b")
        if cut >= 0 and len(text) - cut <= self.HOLD and not _complete(text[cut:]):
            text, self._held = text[:cut], text[cut:]
        else:
            self._held = ""
        return strip_escapes(text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return strip_escapes(text)


def _complete(tail: str) -> bool:
    """Whether the escape that starts `tail` ends within it."""
    if len(tail) < 2:
        return False
    if tail[1] == "[":
        return any("@" <= c <= "~" for c in tail[2:])
    if tail[1] == "]":
        return "\x07" in tail or "\x1b\\" in tail[1:]
    if tail[1] in "()":
        return len(tail) >= 3
    return True


def strip_escapes(text: str) -> str:
    """`text` as a person reads it: without the escapes a terminal would act on."""
    return _ESCAPES.sub("", text) if ("\x1b" in text or _has_control(text)) else text


def _has_control(text: str) -> bool:
    return any((ord(c) < 32 and c not in "\t\n\r") or c in "\x7f\x9b" for c in text)
