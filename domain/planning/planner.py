"""The deterministic PRD planner: a parsed document (prd.py) as tasks at a granularity, with
stable keys (an item's place and number in the document, never its words) and the
dependencies its markers name (`depends on`, `blocked by`, `after`), resolved to keys."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cairn.domain.planning.markers import clean_title, priority_of, references, task_type_of
from cairn.domain.planning.plan_graph import PlanTask
from cairn.domain.planning.prd import Item, Section, document_title, parse_markdown

GRANULARITIES = ("coarse", "balanced", "fine")
CONTEXT = re.compile(
    r"^(overview|background|context|introduction|intro|summary|goals?|non[- ]goals?|"
    r"out of scope|glossary|references?|appendix\b.*|open questions?|questions|risks?|"
    r"motivation|problem( statement)?|assumptions?|success metrics?|metrics|faq|notes?|"
    r"(table of )?contents|changelog|revision history|personas?)$",
    re.I,
)
ACCEPTANCE = re.compile(r"^(acceptance criteria|acceptance|ac|done when|definition of done)$", re.I)


@dataclass
class Node:
    """A section or a work item that a reference may name, and the task it ended up in."""

    key: str
    title: str
    numbers: list[str]  # how it may be named by number
    scope: str  # the section an item's number is local to ("" for a section)
    section: Section | None = None
    item: Item | None = None
    task: str | None = None
    skipped: bool = False


@dataclass
class _Unit:
    key: str
    title: str
    description: list[str]
    criteria: list[str]
    markers: list[tuple[str, str]]  # (text that may carry markers, the section it is in)
    own: list[str] = field(default_factory=list)  # its own words, for priority and type


@dataclass
class Planned:
    tasks: list[PlanTask]
    warnings: list[dict[str, object]]
    skipped: list[dict[str, str]]
    title: str


def plan_document(source: str, granularity: str) -> Planned:
    """Tasks for `source` at `granularity` (coarse: a task per top section; balanced: per
    innermost section; fine: per numbered or checklist item), edges from its markers."""
    root = parse_markdown(source)
    title = document_title(root)
    top = root.children[0].children if title else root.children
    if not top and (root.prose or root.lists):
        top = [Section(2, "Document", 1, prose=root.prose, lists=root.lists)]
    nodes: dict[str, Node] = {}
    keyed = _register(top, "s", nodes)
    skipped: list[dict[str, str]] = []
    units: list[_Unit] = []
    for key, section in keyed:
        if not _is_work(section):
            named = CONTEXT.match(section.title) or ACCEPTANCE.match(section.title)
            reason = "context, not work" if named else "empty section"
            skipped.append({"key": key, "title": section.title, "reason": reason})
            continue
        units += _units(key, section, granularity, nodes, skipped)
    tasks, warnings = _resolve(units, nodes)
    return Planned(tasks, warnings, skipped, title or (top[0].title if top else ""))


def _register(
    sections: list[Section], prefix: str, nodes: dict[str, Node]
) -> list[tuple[str, Section]]:
    """Key every section and work item below: a written number keys a section (`s2`);
    an unnumbered one counts from the numbered sibling before it (`s2+1`), or from the
    start when no sibling is numbered (`s3`)."""
    numbered = any(s.number for s in sections)
    keyed = []
    last, count = "0", 0
    for ordinal, section in enumerate(sections, 1):
        if section.number:
            last, count, part = section.number, 0, section.number
        else:
            count += 1
            part = f"{last}+{count}" if numbered else str(ordinal)
        key = _unique(section.explicit_key or f"{prefix}{part}", nodes)
        nodes[key] = Node(key, clean_title(section.title), [part], "", section=section)
        keyed.append((key, section))
        items, _, _ = _lists(section)
        for i, item in enumerate(items, 1):
            item_key = _unique(item.explicit_key or f"{key}/{item.number or i}", nodes)
            numbers = list(dict.fromkeys(n for n in (item.number, str(i)) if n))
            nodes[item_key] = Node(item_key, clean_title(item.text), numbers, key, item=item)
        _register(section.children, key + ".", nodes)
    return keyed


def _unique(key: str, nodes: dict[str, Node]) -> str:
    while key in nodes:
        key += "~"
    return key


def _is_work(section: Section) -> bool:
    content = bool(section.prose or section.lists or any(_is_work(c) for c in section.children))
    return content and not CONTEXT.match(section.title) and not ACCEPTANCE.match(section.title)


def _lists(section: Section) -> tuple[list[Item], list[str], list[str]]:
    """The section's own work items (numbered, checklist), acceptance criteria and notes."""
    items: list[Item] = []
    criteria: list[str] = []
    notes: list[str] = []
    for block in section.lists:
        if ACCEPTANCE.match(block.label):
            criteria += [i.text for i in block.items]
        else:
            items += [i for i in block.items if i.kind != "bullet"]
            notes += [f"- {i.text}" for i in block.items if i.kind == "bullet"]
    for child in section.children:
        if ACCEPTANCE.match(child.title):
            criteria += [i.text for block in child.lists for i in block.items]
    return items, criteria, notes


def _children(key: str, section: Section, nodes: dict[str, Node]) -> list[tuple[str, Section]]:
    by_section = {id(n.section): k for k, n in nodes.items() if n.section is not None}
    return [(by_section[id(c)], c) for c in section.children if _is_work(c)]


def _units(
    key: str, section: Section, granularity: str, nodes: dict[str, Node],
    skipped: list[dict[str, str]], inherited: tuple[tuple[str, str], ...] = (),
) -> list[_Unit]:  # fmt: skip
    """The tasks of a section; the markers of a section split into several tasks hold for
    each of them (`Depends on section 1` under a heading holds for all below it)."""
    items, _, _ = _lists(section)
    children = _children(key, section, nodes)
    if granularity == "coarse" or not (children or (items and granularity == "fine")):
        return [_section_unit(key, section, nodes, inherited)]
    below = (*inherited, *((line, key) for line in (section.title, *section.prose)))
    found: list[_Unit] = []
    for child_key, child in children:
        found += _units(child_key, child, granularity, nodes, skipped, below)
    if not items:
        return found
    if granularity != "fine":
        return [*found, _section_unit(key, section, nodes, inherited, with_children=False)]
    for item_key, node in [(k, n) for k, n in nodes.items() if n.scope == key and n.item]:
        assert node.item is not None
        if node.item.checked:
            skipped.append({"key": item_key, "title": node.title,
                            "reason": "checked off in the document"})  # fmt: skip
            node.skipped = True
            continue
        found.append(_item_unit(item_key, node.item, key, section, inherited))
        node.task = item_key
    return found


def _section_unit(
    key: str, section: Section, nodes: dict[str, Node], inherited: tuple[tuple[str, str], ...],
    with_children: bool = True,
) -> _Unit:  # fmt: skip
    items, criteria, notes = _lists(section)
    work = [i for i in items if not i.checked]
    description = [*section.prose, *notes]
    markers = [*inherited, *((line, key) for line in (section.title, *section.prose, *notes))]
    for item in work:
        markers += [
            (line, key) for line in (item.text, *item.body, *(c.text for c in item.children))
        ]
    if work:
        description += ["", "Work items:", *(f"- {clean_title(i.text)}" for i in work)]
    merged = _children(key, section, nodes) if with_children else []
    for child_key, child in merged:
        description.append(f"- {clean_title(child.title)}")
        for sub_key, node in nodes.items():
            if sub_key.startswith(child_key) and node.section is not None:
                s = node.section
                sub_items, sub_criteria, sub_notes = _lists(s)
                criteria += sub_criteria
                markers += [(line, sub_key) for line in (s.title, *s.prose, *sub_notes)]
                for i in sub_items:
                    markers += [(line, sub_key) for line in (i.text, *i.body)]
    if not criteria:
        criteria = [clean_title(i.text) for i in work] or [
            f"{clean_title(c.title)} is done" for _, c in merged
        ]
    covered = (key, *(k for k, _ in merged))
    for node_key, node in nodes.items():
        if node_key == key or (node.scope == key and not node.skipped) or any(
            node_key.startswith(c + ".") or node_key.startswith(c + "/") for c in covered[1:]
        ):  # fmt: skip
            node.task = key
    return _Unit(key, clean_title(section.title), description, criteria, markers,
                 [section.title, *section.prose])  # fmt: skip


def _item_unit(
    key: str, item: Item, section_key: str, section: Section,
    inherited: tuple[tuple[str, str], ...],
) -> _Unit:  # fmt: skip
    description = [*item.body, "", f"Part of: {clean_title(section.title)}"]
    markers = [*inherited, *((line, section_key) for line in (item.text, *item.body))]
    markers += [(line, section_key) for line in section.prose]
    markers += [(c.text, section_key) for c in item.children]
    criteria = [clean_title(c.text) for c in item.children]
    return _Unit(key, clean_title(item.text), description, criteria, markers, [item.text])


def _resolve(
    units: list[_Unit], nodes: dict[str, Node]
) -> tuple[list[PlanTask], list[dict[str, object]]]:
    warnings: list[dict[str, object]] = []
    tasks = []
    for unit in units:
        depends: list[str] = []
        for line, scope in unit.markers:
            for ref in references(line):
                matched = _match(ref, scope, nodes)
                targets = [t for n in matched[:1] for t in _targets(n, nodes)]
                where = {"key": unit.key, "reference": ref}
                if not matched:
                    warnings.append(
                        {
                            "code": "unmatched_reference",
                            **where,
                            "message": f"{unit.key}: {ref!r} matches no item; no edge",
                        }
                    )
                elif len(matched) > 1:
                    names = ", ".join(n.key for n in matched)
                    warnings.append(
                        {
                            "code": "ambiguous_reference",
                            **where,
                            "matches": [n.key for n in matched],
                            "message": f"{unit.key}: {ref!r} matches {names}; no edge",
                        }
                    )
                elif not targets:
                    warnings.append({"code": "reference_not_a_task", **where,
                                     "message": f"{unit.key}: {ref!r} names a part that is not "
                                     "a task (context or checked off); no edge"})  # fmt: skip
                else:
                    depends += [t for t in targets if t != unit.key and t not in depends]
        tasks.append(PlanTask(
            key=unit.key, title=unit.title, description="\n".join(unit.description).strip(),
            acceptance_criteria=tuple(c for c in unit.criteria if c.strip())[:200],
            task_type=task_type_of(unit.title, unit.own), priority=priority_of(unit.own),
            depends_on=tuple(depends),
        ))  # fmt: skip
    return tasks, warnings


def _targets(node: Node, nodes: dict[str, Node]) -> list[str]:
    """The tasks a named part became: its own, or those of the parts under it."""
    if node.task or node.skipped:
        return [node.task] if node.task else []
    below = [n.task for n in nodes.values() if n.key.startswith((node.key + ".", node.key + "/"))]
    return list(dict.fromkeys(t for t in below if t))


def _match(ref: str, scope: str, nodes: dict[str, Node]) -> list[Node]:
    """The parts a reference names: a key; `section N`; a number, first among the items of
    the section it is written in, then among sections (`2.1` also as item 1 of section 2);
    else a title, exactly, then as the start of one."""
    text = ref.strip().strip("[]")
    quoted = re.fullmatch(r"""["'`](.+)["'`]""", text)
    number = re.fullmatch(r"(?i)(?:#|item\s*|step\s*|task\s*)?(\d+(?:\.\d+)*)", text)
    section = re.fullmatch(r"(?i)(?:section|§)\s*(\d+(?:\.\d+)*)", text)
    if text in nodes:
        return [nodes[text]]
    if section or number:
        wanted = (section or number)[1]  # type: ignore[index]
        if number and (
            local := [n for n in nodes.values() if n.scope == scope and wanted in n.numbers]
        ):
            return local
        found = [n for n in nodes.values() if not n.scope and _section_number(n.key) == wanted]
        if not found and number and "." in wanted:
            head, _, tail = wanted.rpartition(".")
            found = [n for n in nodes.values() if n.scope == f"s{head}" and tail in n.numbers]
        return found
    name = _norm(quoted[1] if quoted else text)
    exact = [n for n in nodes.values() if _norm(n.title) == name]
    return exact or [n for n in nodes.values() if name and _norm(n.title).startswith(name)]


def _section_number(key: str) -> str:
    return key.removeprefix("s").replace("~", "")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()
