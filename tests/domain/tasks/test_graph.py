from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.tasks.graph import cycle_if_added, find_cycle, waves


def test_cycle_path_is_named() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": []}
    assert cycle_if_added("c", "a", graph) == ["c", "a", "b", "c"]
    assert cycle_if_added("a", "c", graph) == []


def test_find_cycle_and_waves() -> None:
    assert find_cycle({"a": ["b"], "b": ["a"]}) in (["a", "b", "a"], ["b", "a", "b"])
    assert waves({"a": [], "b": ["a"], "c": ["b", "a"], "d": []}) == [["a", "d"], ["b"], ["c"]]


@given(
    st.dictionaries(st.sampled_from("abcdefg"), st.lists(st.sampled_from("abcdefg"), max_size=3))
)
def test_find_cycle_agrees_with_waves(graph: dict[str, list[str]]) -> None:
    graph = {k: [b for b in v if b in graph] for k, v in graph.items()}
    cycle = find_cycle(graph)
    if cycle:
        assert cycle[0] == cycle[-1]
        assert all(b in graph[a] for a, b in itertools.pairwise(cycle))
    else:
        layered = waves(graph)
        depth = {n: i for i, wave in enumerate(layered) for n in wave}
        assert all(depth[b] < depth[a] for a, bs in graph.items() for b in bs)
