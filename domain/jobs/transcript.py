"""A step's transcript: what the agent did, as a conversation a person reads. Each runtime's
event stream (worker/agents/transcripts/) becomes these entries, one kind each:

- `message`: who said it (`user`: the prompt; `assistant`; `operator`: a message an operator
  sent while it ran; `cairn`: what the worker did, as an interruption) and the text;
- `thinking`: the agent's reasoning, where the CLI shows it;
- `tool_call` and `tool_result`: a tool, a one-line summary of its input; ok or not, an excerpt;
- `file_edit`: a file the step changed (from the step's own diff: what is in the checkout, not
  what the CLI says it did), lines added and removed, the hunk when small;
- `command`: a command the agent ran, its exit status, an excerpt of its output;
- `usage`: the step's tokens and cost;
- `error`: what the CLI reported as an error;
- `raw`: a line the parser does not know, kept as it came (never dropped).

Every entry carries its step and its place in it (`seq`, from 0), so a reader resumes after
`<step>.<seq>`. Texts are cut to a size a page shows (the whole output stays in the step's log)."""

from __future__ import annotations

from typing import Any

import msgspec

TEXT_MAX = 20_000  # a message or a thought
EXCERPT_MAX = 2_000  # a tool's result, a command's output
SUMMARY_MAX = 300  # a tool call's one line
HUNK_MAX_LINES = 40  # a file edit's hunk is kept when it is this small
ROLES = ("user", "assistant", "operator", "cairn")


class Entry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind"):
    step: int = 0
    seq: int = 0
    attempt: int = 0  # the job's attempt (a retried job's live stream holds every attempt's)

    @property
    def kind(self) -> str:
        return str(type(self).__struct_config__.tag)


class Message(Entry, frozen=True, kw_only=True, omit_defaults=True, tag="message"):
    role: str
    text: str


class Thinking(Entry, frozen=True, kw_only=True, omit_defaults=True, tag="thinking"):
    text: str


class ToolCall(Entry, frozen=True, kw_only=True, omit_defaults=True, tag="tool_call"):
    tool: str
    summary: str = ""
    call_id: str | None = None


class ToolResult(Entry, frozen=True, kw_only=True, omit_defaults=True, tag="tool_result"):
    tool: str | None = None
    ok: bool = True
    excerpt: str = ""
    call_id: str | None = None


class FileEdit(Entry, frozen=True, kw_only=True, omit_defaults=True, tag="file_edit"):
    path: str
    added: int | None = None  # None: a binary file
    removed: int | None = None
    hunk: str | None = None  # the file's diff when at most HUNK_MAX_LINES long


class Command(Entry, frozen=True, kw_only=True, omit_defaults=True, tag="command"):
    command: str
    exit_status: int | None = None  # None: it did not finish (stopped, or the step ended)
    output: str = ""


class UsageEntry(Entry, frozen=True, kw_only=True, omit_defaults=True, tag="usage"):
    tokens_in: int = 0
    tokens_cached: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None


class ErrorEntry(Entry, frozen=True, kw_only=True, omit_defaults=True, tag="error"):
    message: str


class Raw(Entry, frozen=True, kw_only=True, omit_defaults=True, tag="raw"):
    text: str


TranscriptEntry = (
    Message | Thinking | ToolCall | ToolResult | FileEdit | Command | UsageEntry | ErrorEntry | Raw
)
KINDS = ("message", "thinking", "tool_call", "tool_result", "file_edit", "command", "usage",
         "error", "raw")  # fmt: skip
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(TranscriptEntry)


def encode(entry: TranscriptEntry) -> bytes:
    return _ENCODER.encode(entry)


def decode(line: bytes | str) -> TranscriptEntry:
    """An entry from its JSON (msgspec.ValidationError or DecodeError when it is not one)."""
    return _DECODER.decode(line)


def to_dict(entry: TranscriptEntry) -> dict[str, Any]:
    """An entry as the API shows it: its kind, step and place always, then its fields."""
    shown: dict[str, Any] = msgspec.to_builtins(entry)
    return {"kind": entry.kind, "step": entry.step, "seq": entry.seq, **shown}


def cut(text: str, limit: int) -> str:
    """`text` at most `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    left = len(text) - limit
    return f"{text[:limit]}\n… ({left:,} more characters in the step's log)"


def one_line(text: str, limit: int = SUMMARY_MAX) -> str:
    """`text` on one line (whitespace runs as one space), cut with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def numbered(entries: list[TranscriptEntry], step: int, start: int, attempt: int = 0
             ) -> list[TranscriptEntry]:  # fmt: skip
    """The entries placed in `step` (of `attempt`), numbered from `start`."""
    return [msgspec.structs.replace(e, step=step, seq=start + i, attempt=attempt)
            for i, e in enumerate(entries)]  # fmt: skip


def after(cursor: str | None) -> tuple[int, int]:
    """A cursor `<step>.<seq>` as (step, seq); (0, -1) for none. ValueError if malformed."""
    if not cursor:
        return 0, -1
    step, _, seq = cursor.partition(".")
    if not step.isdigit() or not seq.lstrip("-").isdigit() or len(cursor) > 24:
        raise ValueError(f"not a transcript cursor: {cursor[:40]!r}")
    return int(step), int(seq)
