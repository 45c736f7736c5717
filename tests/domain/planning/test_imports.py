"""The ImportJob decider: auto_ready never passes the hint and never releases a task before
its blockers are resolved; a commit's events fold back into the import it describes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.planning.import_events import ImportCommitted, ImportedTask
from cairn.domain.planning.imports import ACTIVE, ImportJob, decide_release, evolve
from cairn.domain.tasks.states import Flags, Status
from cairn.domain.tasks.task import Task

STATUSES = [s.value for s in Status]


def job(order: list[str], released: list[str], hint: int) -> ImportJob:
    committed = ImportCommitted(
        project="p", document="d", revision=1, granularity="fine", planner="deterministic",
        auto_ready=True, max_parallelism_hint=hint, order=order,
        tasks=[ImportedTask(key=i, task_id=i, title=i) for i in order], added=order,
    )  # fmt: skip
    state = evolve(None, committed, "import-01-" + "a" * 26, 1, "t")
    return ImportJob(**{**{f: getattr(state, f) for f in state.__struct_fields__},
                        "released": released})  # fmt: skip


@st.composite
def graphs(draw: st.DrawFn) -> tuple[ImportJob, dict[str, Task]]:
    n = draw(st.integers(1, 8))
    ids = [f"task-01-{i:026d}" for i in range(n)]
    tasks: dict[str, Task] = {}
    for i, task_id in enumerate(ids):
        blockers = draw(st.lists(st.sampled_from(ids[:i]), unique=True)) if i else []
        tasks[task_id] = Task(id=task_id, version=1, project="p", title="t", task_type="feature",
                              priority=1, status=draw(st.sampled_from(STATUSES)),
                              blocked_by=blockers)  # fmt: skip
    released = [i for i in ids if tasks[i].status != "backlog" or draw(st.booleans())]
    hint = draw(st.integers(1, 4))
    active = [i for i in released if tasks[i].status in ACTIVE]
    for extra in active[hint:]:  # the hint held before this round
        tasks[extra] = Task(
            **{
                **{f: getattr(tasks[extra], f) for f in tasks[extra].__struct_fields__},
                "status": "done",
            }
        )
    return job(ids, released, hint), tasks


@given(graphs())
def test_a_release_never_passes_the_hint_nor_a_blocker(
    case: tuple[ImportJob, dict[str, Task]],
) -> None:
    state, tasks = case
    decision = decide_release(state, tasks, Flags())
    moved = [i for i in decision if i != state.id]
    for task_id in moved:
        assert tasks[task_id].status == "backlog"
        assert all(tasks[b].status in ("done", "cancelled") for b in tasks[task_id].blocked_by)
        assert task_id not in state.released
    active = sum(1 for i in state.released if tasks[i].status in ACTIVE)
    assert active + len(moved) <= state.max_parallelism_hint
    if decision:
        released = decision[state.id][0]
        after = evolve(state, released, state.id, state.version + 1, "t")  # type: ignore[arg-type]
        assert set(after.released) >= set(moved)
