"""Each CLI's stream as a transcript: the recorded output of the pinned CLIs (samples/, made by
tests/agents/capture.py against the scripted server) reads as the conversation it was, chunked
anywhere; junk and cut lines are kept raw and never fail a parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.domain.jobs.transcript import (
    Command,
    ErrorEntry,
    Message,
    Raw,
    ToolCall,
    TranscriptEntry,
    decode,
    encode,
)
from cairn.worker.agents.transcripts import parser_for

SAMPLES = Path(__file__).parent / "samples"


def parse(runtime: str, text: str, chunk: int = 0) -> tuple[list[TranscriptEntry], object]:
    parser = parser_for(runtime, root="/tmp/tmp1wp36jrp/" + f"{runtime}-ok/repo")
    entries: list[TranscriptEntry] = []
    pieces = [text[i : i + chunk] for i in range(0, len(text), chunk)] if chunk else [text]
    for piece in pieces:
        entries += parser.feed(piece)
    entries += parser.finish(0)
    return entries, parser


@pytest.mark.parametrize("runtime", ["claude", "codex", "gemini"])
@pytest.mark.parametrize("chunk", [0, 1, 7, 100])
def test_a_real_run_reads_as_its_conversation(runtime: str, chunk: int) -> None:
    entries, parser = parse(runtime, (SAMPLES / f"{runtime}-ok.txt").read_text(), chunk)
    kinds = [e.kind for e in entries]
    commands = [e for e in entries if isinstance(e, Command)]
    assert [(c.command, c.exit_status) for c in commands if "echo ran" in c.command] == [
        ("echo ran", 0)], entries  # fmt: skip
    assert "ran" in next(c.output for c in commands if c.command == "echo ran")
    messages = [e for e in entries if isinstance(e, Message)]
    assert messages[-1].role == "assistant" and messages[-1].text == "Wrote hello.txt."
    wrote = [e for e in entries if isinstance(e, ToolCall | Command) and "hello.txt" in (
        e.summary if isinstance(e, ToolCall) else e.command)]  # fmt: skip
    assert wrote, entries  # the write is there, naming the file (relative to the checkout)
    if isinstance(wrote[0], ToolCall):
        assert wrote[0].summary == "hello.txt"
    assert parser.session_id and len(parser.session_id) >= 32  # type: ignore[attr-defined]
    assert "{" not in "".join(e.text for e in entries if isinstance(e, Raw))  # no JSON shown raw
    assert kinds.count("message") == 1


def test_stderr_noise_is_kept_raw_and_errors_are_errors() -> None:
    entries, _ = parse("codex", (SAMPLES / "codex-ok.txt").read_text())
    assert Raw(text="Reading additional input from stdin...") in entries
    assert any(isinstance(e, ErrorEntry) and "Model metadata" in e.message for e in entries)
    failed, _ = parse("claude", (SAMPLES / "claude-401.txt").read_text())
    assert any(isinstance(e, ErrorEntry) for e in failed)


def test_gemini_deltas_are_one_message() -> None:
    text = "".join(
        f'{{"type":"message","role":"assistant","content":"{word} ","delta":true}}\n'
        for word in ("All", "done", "here.")
    ) + '{"type":"result","status":"success","stats":{}}\n'
    entries, _ = parse("gemini", text)
    assert entries == [Message(role="assistant", text="All done here.")]


def test_refused_edits_are_noticed() -> None:
    claude = ('{"type":"result","subtype":"success","is_error":false,"result":"I could not.",'
              '"permission_denials":[{"tool_name":"Write","tool_use_id":"t1","tool_input":'
              '{"file_path":"/w/repo/a.txt","content":"x"}}],"session_id":"s"}\n')  # fmt: skip
    _, parser = parse("claude", claude)
    assert parser.refused_edits == ["Write /w/repo/a.txt"]  # type: ignore[attr-defined]
    codex = ('{"type":"item.completed","item":{"id":"i","type":"command_execution","command":'
             '"bash -lc \'touch a\'","aggregated_output":"writing is blocked by read-only '
             'sandbox","exit_code":1,"status":"failed"}}\n')  # fmt: skip
    entries, parser = parse("codex", codex)
    assert parser.refused_edits == ["touch a"]  # type: ignore[attr-defined]
    assert entries == [Command(command="touch a", exit_status=1,
                               output="writing is blocked by read-only sandbox")]  # fmt: skip
    gemini = ('{"type":"tool_use","tool_name":"write_file","tool_id":"w1","parameters":'
              '{"file_path":"a.txt","content":"x"}}\n{"type":"tool_result","tool_id":"w1",'
              '"status":"error","output":"Tool \\"write_file\\" not found in registry."}\n')
    _, parser = parse("gemini", gemini)
    assert parser.refused_edits == ["write_file a.txt"]  # type: ignore[attr-defined]


def test_a_shell_step_is_its_command() -> None:
    parser = parser_for("shell", command="make test")
    assert parser.feed("ok 1\nok 2\n") == []
    assert parser.finish(2) == [Command(command="make test", exit_status=2, output="ok 1\nok 2\n")]


def test_entries_round_trip_as_json() -> None:
    entries, _ = parse("claude", (SAMPLES / "claude-ok.txt").read_text())
    assert [decode(encode(e)) for e in entries] == entries


JSONISH = st.text(alphabet=st.sampled_from(list('{}[]":,\\ \nabtypemsgcontext0123456789')),
                  max_size=400)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(runtime=st.sampled_from(["claude", "codex", "gemini", "shell", "other"]),
       junk=st.one_of(JSONISH, st.text(max_size=300)), cut_at=st.integers(0, 5000))
def test_no_output_makes_a_parser_fail(runtime: str, junk: str, cut_at: int) -> None:
    real = (SAMPLES / f"{runtime if runtime in ('claude', 'codex', 'gemini') else 'claude'}"
            "-ok.txt").read_text()  # fmt: skip
    parser = parser_for(runtime, command="x")
    entries = parser.feed(real[:cut_at]) + parser.feed(junk) + parser.finish(None)
    for entry in entries:
        assert decode(encode(entry)) == entry


def test_a_refused_command_is_no_refused_edit() -> None:
    """claude's permission denials name every tool it refused: a Bash command it would not run
    is that command's failure, not an edit refused."""
    parser = parser_for("claude")
    parser.feed('{"type":"result","subtype":"success","permission_denials":[{"tool_name":"Bash",'
                '"tool_input":{"command":"python3 x.py"}},{"tool_name":"Edit","tool_input":'
                '{"file_path":"a.py"}}]}\n')
    assert parser.refused_edits == ["Edit a.py"]
