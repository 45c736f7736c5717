"""Random turns of a board task and its runs (scheduler, worker, reaper, people) against the
pure deciders of domain/jobs/runs.py never break the rules that tie a task to its jobs."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.domain.decision import Decision
from cairn.domain.errors import DomainError
from cairn.domain.jobs.attempts import (
    RetryPolicy,
    cancelled_as_requested,
    check_lease,
    decide_fail,
    decide_lease_expired,
    decide_poisoned,
)
from cairn.domain.jobs.events import (
    JobEvent,
    JobReleased,
    JobStepFinished,
    JobStepStarted,
    JobSucceeded,
)
from cairn.domain.jobs.job import ACTIVE, TERMINAL, Job, JobStatus, apply_events, decide_cancel
from cairn.domain.jobs.job import evolve as evolve_job
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.jobs.steps import step_label
from cairn.domain.tasks.events import TaskEvent
from cairn.domain.tasks.runs import (
    decide_cancel_task,
    decide_claim_run,
    decide_retry,
    decide_run_request,
    decide_with_task,
    run_submission,
)
from cairn.domain.tasks.spec import TaskSpec
from cairn.domain.tasks.states import RESOLVED, Flags, Status
from cairn.domain.tasks.task import Task, decide_create, decide_transition
from cairn.domain.tasks.task import evolve as evolve_task

T, B = "task-00-0000000000000000", "task-00-000000000000000b"  # the task and its blocker
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
NOOP = normalize_job("noop", {}, ContractSettings())

KINDS = [
    "request", "claim", "cancel_task", "retry", "move", "move_blocker",  # the task's side
    "fail", "fail_final", "succeed", "expire", "release", "stop", "cancel_job", "poison",
    "step_start", "step_finish",
]  # fmt: skip
# The turns that move a run along come more often, so that runs get far.
OFTEN = ["request", "claim", "claim", "succeed", "fail", "stop", "step_start", "step_finish"]
# A turn: its kind, a target status (moves) and whether it is forced (moves, run now).
turns = st.lists(
    st.tuples(
        st.sampled_from([*KINDS, *OFTEN]),
        st.sampled_from(list(Status)),
        st.booleans(),
    ),
    min_size=20,
    max_size=80,
)


class World:
    def __init__(self, blocker_done: bool, flags: Flags) -> None:
        self.flags = flags
        self.tasks: dict[str, Task] = {}
        self.jobs: dict[str, Job] = {}
        self.apply(decide_create(B, spec(B, "ready"), self.tasks, force=False))
        if blocker_done:
            for to in (Status.IN_PROGRESS, Status.IN_REVIEW, Status.DONE):
                self.apply(decide_transition(self.tasks[B], to, self.tasks, flags, force=True))
        ready = "ready" if blocker_done else "backlog"
        self.apply(decide_create(T, spec(T, ready, [B]), self.tasks, force=False))

    @property
    def task(self) -> Task:
        return self.tasks[T]

    def run(self) -> Job | None:
        """The task's active run, else its last one."""
        ids = self.task.run_ids
        job_id = self.task.active_job_id or (ids[-1] if ids else None)
        return self.jobs[job_id] if job_id else None

    def apply(self, decision: Decision) -> None:
        for agg, events in decision.items():
            for event in events:
                if agg.startswith("task-"):
                    assert isinstance(event, TaskEvent), (agg, event)
                    old = self.tasks.get(agg)
                    version = old.version + 1 if old else 1
                    self.tasks[agg] = evolve_task(old, event, agg, version, "t")
                else:
                    assert agg.startswith("job-") and isinstance(event, JobEvent), (agg, event)
                    before = self.jobs.get(agg)
                    version = before.version + 1 if before else 1
                    self.jobs[agg] = evolve_job(before, event, agg, version, "t")

    def job_turn(self, job: Job, events: list[JobEvent]) -> Decision:
        after = apply_events(job, events, "t")
        return decide_with_task(job, events, after, self.task, self.flags)


def spec(task_id: str, status: str, blocked_by: list[str] | None = None) -> TaskSpec:
    return TaskSpec.model_validate(
        {"title": task_id, "task_type": "chore", "priority": 1, "status": status,
         "blocked_by": blocked_by or []}
    )  # fmt: skip


def decide(world: World, kind: str, to: Status, force: bool) -> Decision:
    """One turn, as the command that makes it would decide it."""
    task, run, flags = world.task, world.run(), world.flags
    blockers = {B: world.tasks[B]}
    if kind == "request":
        job_id = f"job-00-{len(task.run_ids):016d}"
        return decide_run_request(task, job_id, run_submission(task, NOOP), flags, force=force)
    if kind == "cancel_task":
        return decide_cancel_task(task, run, {T: task}, flags)
    if kind == "retry":
        return decide_retry(task, blockers, flags)
    if kind == "move":
        return decide_transition(task, to, world.tasks, flags, force=force)
    if kind == "move_blocker":
        return decide_transition(world.tasks[B], to, world.tasks, flags, force=force)
    if run is None:
        raise DomainError("no run yet")
    if kind == "claim":
        return decide_claim_run(run, task, blockers, flags, worker_id="w", epoch=run.epoch + 1)
    return world.job_turn(run, job_events(run, kind))


def job_events(job: Job, kind: str) -> list[JobEvent]:
    """What a worker, the reaper or a person's cancel appends to the job."""
    policy = RetryPolicy()
    if kind in {"fail", "fail_final"}:
        return decide_fail(job, job.epoch, {"code": "x"}, NOW, policy, retryable=kind == "fail")
    if kind == "expire":
        return decide_lease_expired(job, NOW, policy)
    if kind == "cancel_job":
        return decide_cancel(job, "by hand")
    if kind == "poison":
        return decide_poisoned(job, 5)
    check_lease(job, job.epoch)
    if kind == "step_start":
        index = len(job.steps) + 1
        return [JobStepStarted(epoch=job.epoch, index=index, step_id=f"s{index}",
                               title=f"Step {index}" if index % 2 else None)]  # fmt: skip
    if kind == "step_finish":
        if not job.steps or job.steps[-1]["status"] != "running":
            raise DomainError("no step to finish")
        last = job.steps[-1]
        return [JobStepFinished(epoch=job.epoch, index=last["index"], step_id=last["step_id"],
                                outcome="failed" if last["index"] % 3 == 0 else "succeeded")]
    if kind == "succeed":
        return [JobSucceeded(epoch=job.epoch)]
    if kind == "release":
        return [JobReleased(epoch=job.epoch)]
    if job.status != JobStatus.CANCEL_REQUESTED:  # "stop": the worker honours a cancel
        raise DomainError("no cancel to honour")
    return [cancelled_as_requested(job)]


def check_turn(world: World, kind: str, before: Task, run: Job | None) -> None:
    """What each decider promises about the turn it decided."""
    task = world.task
    if kind == "request" and before.active_job_id is None:
        assert task.status == Status.READY and task.active_job_id == task.run_ids[-1]
        assert world.jobs[task.active_job_id].status == JobStatus.QUEUED
        assert world.jobs[task.active_job_id].task_id == T
    if kind == "request" and before.active_job_id is not None:
        assert task == before, "a task has one active run at a time"
    if kind == "claim" and run is not None:
        claimed = world.jobs[run.id]
        if claimed.status == JobStatus.RUNNING:
            assert task.status == Status.IN_PROGRESS and task.current_agent_id == "w"
            # The claim guard and the dependency guard: a claim starts the task only when
            # its blockers are resolved, unless a person forced it.
            assert before.forced or all(world.tasks[b].status in RESOLVED for b in task.blocked_by)
        else:
            assert claimed.status == JobStatus.CANCELLED
            assert task.active_job_id is None and task.status != Status.IN_PROGRESS
    if kind == "cancel_task":
        assert task.status == Status.CANCELLED
        if run is not None and run.id == before.active_job_id:
            after = world.jobs[run.id]
            if run.status == JobStatus.QUEUED:
                assert after.status == JobStatus.CANCELLED and task.active_job_id is None
            if run.status == JobStatus.RUNNING:
                assert after.status == JobStatus.CANCEL_REQUESTED
                assert task.active_job_id == run.id, "the task's run ends when the worker stops"
    if kind == "retry":
        assert before.status == Status.BLOCKED and task.status == Status.READY
        assert all(world.tasks[b].status in RESOLVED for b in task.blocked_by)
    if kind in {"step_start", "step_finish"} and run is not None:
        assert task.status == before.status, "a step never moves the task"
        if run.id == before.active_job_id:
            assert task.version > before.version, "the task follows its active run's steps"


def check_invariants(world: World) -> None:
    task = world.task
    live = [j for j in world.jobs.values() if j.status not in TERMINAL]
    assert all(j.task_id == T for j in world.jobs.values())
    assert [j.id for j in live] in ([], [task.active_job_id]), "one live run, the active one"
    if task.active_job_id is not None:
        assert world.jobs[task.active_job_id].status not in TERMINAL, "no dangling active run"
    assert task.run_ids == sorted(world.jobs), "every run is linked to the task, in order"
    if task.status == Status.IN_PROGRESS and not task.forced:
        active = world.jobs.get(task.active_job_id or "")
        assert active is not None and active.status in ACTIVE, "in progress only while it runs"
    for job in world.jobs.values():
        assert job.attempt <= job.max_attempts
    active = world.jobs.get(task.active_job_id or "")
    if active is not None and active.status in ACTIVE:
        # The card shows the step the run is on (none before its first step).
        shown = step_label(active.steps[-1]) if active.steps else None
        assert task.current_step == shown


@settings(max_examples=400, deadline=None)
@given(turns, st.booleans(), st.booleans())
def test_random_turns_keep_a_task_and_its_runs_in_step(
    steps: list[tuple[str, Status, bool]], blocker_done: bool, auto: bool
) -> None:
    world = World(blocker_done, Flags(auto_approve_review=auto))
    for kind, to, force in steps:
        before, run = world.task, world.run()
        try:
            decision = decide(world, kind, to, force)
        except DomainError:
            continue
        if kind not in {"move", "move_blocker"}:
            new_run = f"job-00-{len(before.run_ids):016d}"
            assert set(decision) <= {T, new_run, *world.jobs}, "a run touches its task only"
        world.apply(decision)
        check_turn(world, kind, before, run)
        check_invariants(world)
