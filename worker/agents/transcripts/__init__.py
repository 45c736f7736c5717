"""Each runtime's output as transcript entries (domain/jobs/transcript.py): one module per CLI
for its event stream, and the line handling they share here. A parser is fed the step's output
as it comes, in chunks cut anywhere; it never fails: a line that is not JSON, or JSON it does
not know, is a `raw` entry. It also keeps what the worker needs of the stream: the CLI's session
id (for a follow-up to resume) and whether the CLI refused the agent's edits."""

from __future__ import annotations

from cairn.worker.agents.transcripts.base import Parser
from cairn.worker.agents.transcripts.claude import ClaudeParser
from cairn.worker.agents.transcripts.codex import CodexParser
from cairn.worker.agents.transcripts.gemini import GeminiParser
from cairn.worker.agents.transcripts.shell import ShellParser

PARSERS: dict[str, type[Parser]] = {
    "claude": ClaudeParser, "codex": CodexParser, "gemini": GeminiParser, "shell": ShellParser,
}  # fmt: skip


def parser_for(runtime: str, *, command: str = "", root: str = "") -> Parser:
    """The parser of `runtime`'s output (an unknown runtime's lines are kept raw); `root`, the
    checkout, is left out of the paths it shows."""
    if runtime == "shell":
        return ShellParser(command, root=root)
    return PARSERS.get(runtime, Parser)(root=root)


__all__ = ["Parser", "parser_for"]
