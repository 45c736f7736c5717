"""A PRD's markdown as a tree: sections (headings), their prose and their lists (numbered,
checklist, plain; nested, with the label line that introduced them). Pure text parsing; what
becomes a task is the planner's business (domain/planning/planner.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^(\s*)([-*+]|(\d{1,4})[.)])\s+(?:\[([ xX])\]\s+)?(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_NUMBERED_TITLE = re.compile(
    r"^(?:(?:phase|part|step|milestone|section)\s+)?(\d{1,4}(?:\.\d{1,4})*)[.):]?\s+(.*)$", re.I
)
_EXPLICIT_KEY = re.compile(r"^\[?([A-Z][A-Z0-9]{0,15}-\d{1,6})\]?[:\s]\s*(.*)$")


@dataclass
class Item:
    """One list item: `kind` is numbered, checklist or bullet; `number` the number written
    before a numbered item; `body` its continuation lines; `children` its nested items."""

    kind: str
    text: str
    line: int
    number: str | None = None
    checked: bool = False
    explicit_key: str | None = None
    body: list[str] = field(default_factory=list)
    children: list[Item] = field(default_factory=list)
    indent: int = 0


@dataclass
class ListBlock:
    label: str  # the prose line just before the list ("Acceptance criteria:"), or ""
    items: list[Item] = field(default_factory=list)


@dataclass
class Section:
    level: int  # 0 for the document itself
    title: str
    line: int
    number: str | None = None  # written in the heading: "## 2. Billing"
    explicit_key: str | None = None
    prose: list[str] = field(default_factory=list)
    lists: list[ListBlock] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)


def parse_markdown(source: str) -> Section:
    """The document as a tree of sections under a root (level 0); code blocks stay prose."""
    root = Section(0, "", 0)
    stack = [root]
    open_items: list[Item] = []  # the items of the list being read, outermost first
    fenced = False
    last_prose = ""
    for n, raw in enumerate(source.splitlines(), 1):
        line = raw.rstrip()
        section = stack[-1]
        if _FENCE.match(line):
            fenced = not fenced
        if fenced or _FENCE.match(line):
            _continue(section, open_items, line)
            continue
        heading = _HEADING.match(line)
        if heading:
            level = len(heading[1])
            while stack[-1].level >= level:
                stack.pop()
            number, title, key = split_title(heading[2])
            child = Section(level, title, n, number, key)
            stack[-1].children.append(child)
            stack.append(child)
            open_items, last_prose = [], ""
            continue
        item = _ITEM.match(line)
        if item:
            indent = len(item[1].expandtabs(4))
            while open_items and open_items[-1].indent >= indent:
                open_items.pop()
            kind = "checklist" if item[4] is not None else "numbered" if item[3] else "bullet"
            text = item[5].strip()
            key = None
            explicit = _EXPLICIT_KEY.match(text)
            if explicit:
                key, text = explicit[1], explicit[2].strip() or explicit[1]
            new = Item(kind, text, n, item[3], (item[4] or " ") != " ", key, indent=indent)
            if open_items:
                open_items[-1].children.append(new)
            else:
                section.lists.append(ListBlock(_label(last_prose), [new]))
                if section.lists[-1].label:
                    last_prose = ""
            open_items.append(new)
            continue
        if not line.strip():
            continue
        if open_items and len(line) - len(line.lstrip()) > open_items[0].indent:
            open_items[-1].body.append(line.strip())
            continue
        open_items = []
        section.prose.append(line.strip())
        last_prose = line.strip()
    return root


def split_title(text: str) -> tuple[str | None, str, str | None]:
    """A heading's written number, its title and an explicit key (`[AUTH-2] Login`)."""
    key = None
    explicit = _EXPLICIT_KEY.match(text)
    if explicit:
        key, text = explicit[1], explicit[2] or explicit[1]
    numbered = _NUMBERED_TITLE.match(text)
    if numbered and numbered[2].strip():
        return numbered[1], numbered[2].strip(), key
    return None, text.strip(), key


def _label(prose: str) -> str:
    text = prose.strip().strip("*_").rstrip()
    return text[:-1].strip().strip("*_") if text.endswith(":") else ""


def _continue(section: Section, open_items: list[Item], line: str) -> None:
    if open_items:
        open_items[-1].body.append(line)
    else:
        section.prose.append(line)


def walk(section: Section) -> list[Section]:
    """The section and all below it, in document order."""
    found = [section]
    for child in section.children:
        found += walk(child)
    return found


def document_title(root: Section) -> str:
    """The PRD's title: its only top heading when every other heading is below it."""
    return root.children[0].title if len(root.children) == 1 and root.children[0].level == 1 else ""
