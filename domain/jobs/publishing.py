"""Publishing rules: the verification gate, and the PR title, PR body and commit message.

The gate: a run that changed source files publishes only with evidence that a verification
(tests, a linter, a type checker) passed, or with an explicit skip reason. A file is
documentation, not source, when it has a documentation suffix (DOC_SUFFIXES), a documentation
name (DOC_NAMES: LICENSE, CHANGELOG, ...) or lies under a `docs/` or `doc/` folder at any
depth; dependency lists that happen to be text (requirements*.txt, CMakeLists.txt, ...) are
source. A failing verification is evidence of failure: a skip reason explains a verification
that did not run, it does not excuse one that failed.

Texts made here go through the worker's redactor before they leave it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cairn.domain.jobs.verifications import verification_kind

__all__ = [
    "SKIP_CATEGORIES", "Evidence", "GateDecision", "SkipCategory", "commit_message",
    "is_documentation", "pr_body", "pr_title", "step_evidence", "verification_gate",
    "verification_kind",
]  # fmt: skip

# Why a run may publish source changes without a verification (publish.verificationSkipReason).
SkipCategory = Literal["docs_only", "config_only", "no_tests_exist", "emergency", "other"]
SKIP_CATEGORIES: dict[str, str] = {
    "docs_only": "only documentation changed, though the gate saw other files",
    "config_only": "only configuration changed, which no test covers",
    "no_tests_exist": "the repository has no tests or linters to run",
    "emergency": "a fix that cannot wait for a verification (follow up with the ticket)",
    "other": "anything else; the reason says what",
}
DOC_SUFFIXES = frozenset({".md", ".markdown", ".mdx", ".rst", ".txt", ".adoc", ".asciidoc"})
DOC_NAMES = frozenset({"LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS", "CONTRIBUTORS",
                       "CHANGELOG", "CHANGES", "HISTORY", "CODEOWNERS", "README"})  # fmt: skip
DOC_FOLDERS = frozenset({"docs", "doc"})
_TEXT_SOURCES = re.compile(r"(?i)(requirements|constraints)[^/]*\.txt|cmakelists\.txt")
MAX_TITLE = 90
MAX_INSTRUCTIONS_SHOWN = 4_000


@dataclass(frozen=True)
class Evidence:
    """A verification that ran: its kind (test, lint, typecheck), command and exit status."""

    kind: str
    command: str
    exit_status: int
    step_id: str | None = None

    @property
    def passed(self) -> bool:
        return self.exit_status == 0

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "command": self.command, "exit_status": self.exit_status,
                "step_id": self.step_id}  # fmt: skip


@dataclass(frozen=True)
class GateDecision:
    """Whether the run may publish, why (a sentence for a person), and what it was shown."""

    allowed: bool
    reason: str
    evidence: list[dict[str, Any]]
    skip_reason: dict[str, str] | None


def is_documentation(path: str) -> bool:
    """Whether a changed path is documentation rather than source (see the module's rule)."""
    *folders, name = path.strip("/").split("/")
    if _TEXT_SOURCES.fullmatch(name):
        return False
    stem, dot, suffix = name.rpartition(".")
    if dot and f".{suffix.lower()}" in DOC_SUFFIXES:
        return True
    return (stem if dot else name).upper() in DOC_NAMES or bool(DOC_FOLDERS & set(folders))


def verification_gate(
    *,
    changed_paths: Sequence[str],
    evidence: Sequence[Evidence],
    skip_reason: Mapping[str, str] | None,
) -> GateDecision:
    """Decide whether a run's changes may be published (see the module's rule)."""
    shown = [e.as_dict() for e in evidence]
    skip = dict(skip_reason) if skip_reason else None

    def decide(allowed: bool, reason: str) -> GateDecision:
        return GateDecision(allowed=allowed, reason=reason, evidence=shown, skip_reason=skip)

    sources = [path for path in changed_paths if not is_documentation(path)]
    if not sources:
        what = "only documentation changed" if changed_paths else "no files changed"
        return decide(True, f"{what}: no source file needs a verification")
    latest = {" ".join(e.command.split()): e for e in evidence}  # the last run of each command
    failed = [e for e in latest.values() if not e.passed]
    if failed:
        first = failed[0]
        return decide(False, (
            f"verification failed: `{first.command}` exited {first.exit_status}"
            f"{_in_step(first)}; publishing needs it to pass (a skip reason does not cover a "
            "failed verification)"
        ))  # fmt: skip
    if latest:
        ran = ", ".join(f"`{e.command}`" for e in latest.values())
        return decide(True, f"verified: {ran} passed")
    if skip:
        return decide(True, f"verification skipped ({skip.get('category')}): {skip.get('reason')}")
    more = f" and {len(sources) - 1} more" if len(sources) > 1 else ""
    return decide(False, (
        f"source files changed ({sources[0]}{more}) but no verification ran; run tests or a "
        "linter in a step (pytest, npm test, make test, ruff, ...), or set "
        "task.publish.verificationSkipReason {category, reason} to publish without one"
    ))  # fmt: skip


def step_evidence(command_line: str, *, exit_status: int, step_id: str | None) -> Evidence | None:
    """A `shell` step's command line as evidence, if it runs a verification (else None)."""
    kind = verification_kind(command_line)
    if kind is None:
        return None
    return Evidence(kind=kind, command=command_line, exit_status=exit_status, step_id=step_id)


def pr_title(step_titles: Sequence[str | None], instructions: str | None, job_id: str) -> str:
    """The first step's title, else the first sentence of the instructions, else another
    step's title, else one naming the job; one line of at most 90 characters."""
    titles = [" ".join((t or "").split()) for t in step_titles]
    candidates = [titles[0] if titles else "", _first_sentence(instructions or ""), *titles]
    title = next((c for c in candidates if c), f"Cairn job {job_id}")
    if len(title) <= MAX_TITLE:
        return title
    cut = title[: MAX_TITLE - 1]
    words = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return words.rstrip(" ,;:-") + "…"


def pr_body(
    *,
    given: str | None,
    instructions: str | None,
    step_titles: Sequence[str | None],
    job_id: str,
    actor: str,
    gate: GateDecision | None,
    diffstat: str | None = None,
) -> str:
    """The PR description: the given body (else the task and its steps), the verification,
    the diff stat, and a line naming the job and who asked for it."""
    parts: list[str] = []
    if given and given.strip():
        parts.append(given.strip())
    else:
        text = (instructions or "").strip()
        if len(text) > MAX_INSTRUCTIONS_SHOWN:
            text = text[:MAX_INSTRUCTIONS_SHOWN].rstrip() + "\n\n… (cut; the job holds it all)"
        if text:
            parts.append(f"## Task\n\n{text}")
        if step_titles:
            steps = [
                f"{i}. {(t or '').strip() or f'step-{i}'}" for i, t in enumerate(step_titles, 1)
            ]
            parts.append("## Steps\n\n" + "\n".join(steps))
    if gate is not None:
        parts.append("## Verification\n\n" + "\n".join(_verification_lines(gate)))
    if diffstat and diffstat.strip():
        parts.append(f"## Changes\n\n```\n{diffstat.strip()}\n```")
    parts.append(f"---\nOpened by Cairn for job `{job_id}`, requested by {_one_line(actor)}.")
    return "\n\n".join(parts) + "\n"


def commit_message(given: str | None, job_id: str, actor: str, title: str) -> str:
    """The payload's commit message, else the title and a line naming the job; with the
    trailers `Cairn-Job` and `Cairn-Actor` (any the message already had are replaced)."""
    text = (given or "").strip()
    if not text:
        text = f"{title}\n\nMade by Cairn job {job_id}."
    lines = [line for line in text.splitlines() if not _OUR_TRAILER.match(line)]
    text = "\n".join(lines).rstrip()
    trailers = f"Cairn-Job: {_one_line(job_id)}\nCairn-Actor: {_one_line(actor) or 'unknown'}"
    head, _, last = text.rpartition("\n\n")
    is_trailer_block = head and all(_TRAILER.match(line) for line in last.splitlines())
    return f"{text}\n{trailers}\n" if is_trailer_block else f"{text}\n\n{trailers}\n"


_OUR_TRAILER = re.compile(r"(?i)cairn-(job|actor):")
_TRAILER = re.compile(r"[A-Za-z0-9-]+: \S")


def _in_step(evidence: Evidence) -> str:
    return f" in {evidence.step_id}" if evidence.step_id else ""


def _verification_lines(gate: GateDecision) -> list[str]:
    lines = [
        f"- `{e['command']}` {'passed' if e['exit_status'] == 0 else 'failed'}"
        + (f" ({e['step_id']})" if e["step_id"] else "")
        for e in gate.evidence
    ]
    skip = gate.skip_reason
    if skip and not lines:
        ticket = f" ({skip['ticket']})" if skip.get("ticket") else ""
        lines.append(f"- skipped ({skip.get('category')}): {skip.get('reason')}{ticket}")
    return lines or [f"- {gate.reason}"]


def _first_sentence(text: str) -> str:
    for line in text.splitlines():
        line = " ".join(line.lstrip("#>*-+ \t").split())
        if line:
            return re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0].removesuffix(".")
    return ""


def _one_line(text: str) -> str:
    return " ".join(text.split())
