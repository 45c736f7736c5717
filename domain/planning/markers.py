"""The markers a PRD's words carry: dependencies (`depends on #2, "Login"`, `blocked by 3.1`,
`after #1`), priority (`[P1]`, `(priority: high)`) and task type (`(type: docs)`, `[bug]`, or
the title's words), and a title with its markers taken out."""

from __future__ import annotations

import re

from cairn.domain.priority import PRIORITY_NAMES

_MARKER = re.compile(r"(?i)\b(depends on|depends upon|blocked by|after)\b\s*:?\s*")
_PART = re.compile(r"""\s*("[^"]+"|`[^`]+`|'[^']+'|[^,&/]+?)\s*(?:,|&|/|\band\b|$)""")
_STRUCTURED = re.compile(
    r"""(?ix)^(\#\d+(\.\d+)*|(item|step|task|section|§)\s*\d+(\.\d+)*|\d+(\.\d+)+|
    \[?[A-Z][A-Z0-9]*-\d+\]?|"[^"]+"|`[^`]+`|'[^']+')$"""
)
_PRIORITY_TAG = re.compile(
    r"(?i)\[(p[0-3]|critical|urgent|high|medium|low)\]|\(priority\s*:\s*(\w+)\)|"
    r"\bpriority\s*:\s*(\w+)|^(p[0-3])\b|\b(p[0-3])$"
)
_TYPE_TAG = re.compile(
    r"(?i)\(type\s*:\s*(\w+)\)|\[(bug|docs|test|chore|refactor|research|hotfix|feature)\]"
)
PRIORITIES = {**PRIORITY_NAMES, "urgent": 3, "p0": 3, "p1": 2, "p2": 1, "p3": 0}
DEFAULT_PRIORITY = PRIORITY_NAMES["medium"]
TYPES = {"bug": "bug_fix", "bug_fix": "bug_fix", "docs": "docs", "test": "test", "chore": "chore",
         "refactor": "refactor", "research": "research", "hotfix": "hotfix",
         "feature": "feature"}  # fmt: skip
TYPE_WORDS = (
    ("hotfix", re.compile(r"(?i)\bhotfix")), ("bug_fix", re.compile(r"(?i)\b(bug|fix(es)?)\b")),
    ("test", re.compile(r"(?i)\btests?\b|\btesting\b")),
    ("docs", re.compile(r"(?i)\b(docs?|documentation|readme)\b")),
    ("refactor", re.compile(r"(?i)\brefactor")),
    ("research", re.compile(r"(?i)\b(research|investigate|spike|evaluate)\b")),
    ("chore", re.compile(r"(?i)\b(chore|upgrade|bump|clean ?up)\b")),
)  # fmt: skip


def references(text: str) -> list[str]:
    """What a line's markers name, in order. `after` in a sentence counts only before a number,
    a key or a quoted title: elsewhere it is common prose ("after sign-in the user sees...").
    As a line's label (`After: Charge on invoice finalization.`) it names as `Depends on:`
    does."""
    found: list[str] = []
    for marker in _MARKER.finditer(text):
        rest = re.split(r"""[.;)\]](?=\s|$)|[;)]""", text[marker.end() :], maxsplit=1)[0]
        parts = [re.sub(r"(?i)^(on|upon)\s+", "", p.strip(" *_")) for p in _PART.findall(rest)]
        parts = [p for p in parts if p]
        label = ":" in marker[0] and not text[: marker.start()].strip(" \t-*_>+")
        if marker[1].lower() == "after" and not label:
            parts = parts[:1] if parts and _STRUCTURED.match(parts[0]) else []
        found += parts
    return found


def clean_title(text: str) -> str:
    """A title without its markers: dependencies, priority and type tags, emphasis."""
    text = re.split(r"(?i)[\s(\[—\u2013-]*\b(?:depends on|depends upon|blocked by)\b", text)[0]
    text = re.sub(r"(?i)\s*\(after\b[^)]*\)", "", text)
    text = _TYPE_TAG.sub("", _PRIORITY_TAG.sub("", text))
    text = text.replace("**", "").strip(" \t:—\u2013-*_")
    return text[:300] or "Untitled"


def priority_of(lines: list[str]) -> int:
    """The first priority marker in `lines` (P0 is critical), else medium."""
    for line in lines:
        found = _PRIORITY_TAG.search(line)
        if found:
            word = next(g for g in found.groups() if g).lower()
            if word in PRIORITIES:
                return PRIORITIES[word]
    return DEFAULT_PRIORITY


def task_type_of(title: str, lines: list[str]) -> str:
    """A type marker in `lines`, else the type the title's words suggest, else feature."""
    for line in lines:
        tag = _TYPE_TAG.search(line)
        if tag and (tag[1] or tag[2]).lower() in TYPES:
            return TYPES[(tag[1] or tag[2]).lower()]
    return next((name for name, words in TYPE_WORDS if words.search(title)), "feature")
