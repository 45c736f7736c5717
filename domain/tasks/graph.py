"""Dependency-graph maths: paths, cycles and waves (sets that can run together)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence


def find_path(start: str, goal: str, edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The shortest path start -> ... -> goal following `edges`, or None."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while (parent := previous[path[-1]]) is not None:
                path.append(parent)
            return path[::-1]
        for nxt in edges.get(node, ()):
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return None


def cycle_if_added(node: str, blocker: str, blocked_by: Mapping[str, Sequence[str]]) -> list[str]:
    """The cycle `node -> blocker -> ... -> node` that the edge would close, or []."""
    path = find_path(blocker, node, blocked_by)
    return [node, *path] if path else []


def find_cycle(blocked_by: Mapping[str, Sequence[str]]) -> list[str]:
    """Some cycle of the graph as a closed path [a, b, ..., a], or [] if it is acyclic."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in blocked_by:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            children = blocked_by.get(node, ())
            if i < len(children):
                stack.append((node, i + 1))
                child = children[i]
                if state.get(child) == 1:
                    return [*path[path.index(child) :], child]
                if not state.get(child):
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()
    return []


def waves(blocked_by: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Nodes grouped by depth: wave 0 has no blockers inside the graph, wave n needs n-1."""
    depth: dict[str, int] = {}

    def depth_of(node: str, seen: frozenset[str]) -> int:
        if node in depth:
            return depth[node]
        if node in seen:
            raise ValueError(f"cycle through {node}")
        inner = [b for b in blocked_by.get(node, ()) if b in blocked_by]
        depth[node] = 1 + max((depth_of(b, seen | {node}) for b in inner), default=-1)
        return depth[node]

    for node in blocked_by:
        depth_of(node, frozenset())
    result: list[list[str]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
    for node in blocked_by:
        result[depth[node]].append(node)
    return result
