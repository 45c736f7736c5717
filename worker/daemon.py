"""The worker daemon: reads the dispatch streams it is eligible for, claims, runs stages, and
reports every step as a fenced command. One worker id runs at most `concurrency` jobs."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Coroutine, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cairn.commands.jobs import claims
from cairn.commands.jobs.held import Held, Stage
from cairn.commands.jobs.job import load_jobs
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError, DomainError, InfrastructureError, StaleLease
from cairn.domain.jobs.attempts import RetryPolicy
from cairn.domain.jobs.contract import WorkerDefaults
from cairn.domain.jobs.dispatch import eligible, run_order_key
from cairn.domain.jobs.job import Job
from cairn.streams.artifacts import FileArtifactStore
from cairn.streams.dispatch import Dispatch, Message
from cairn.streams.driver import Client
from cairn.streams.keys import Keys
from cairn.streams.lifetime import wait_for_stop
from cairn.streams.live import LiveChannels
from cairn.streams.output import OutputStream
from cairn.streams.registry import Registry
from cairn.streams.store import EventStore
from cairn.worker.agents.signin import AgentFound
from cairn.worker.failures import Cancelled, StageFailed
from cairn.worker.run import JobRun, RunTools
from cairn.worker.sandbox import Sandbox, prepare_sandbox

log = logging.getLogger("cairn.worker")
STAGES = ("prepare", "execute", "publish")
PAUSE_READ_S = 0.2
RETRY_S = (0.1, 0.25, 0.5, 1.0, 2.0)  # backoff while the store is unavailable


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    worker_id: str
    capabilities: list[str]
    concurrency: int = 1
    lease_s: float = 120.0
    stop_grace_s: float = 30.0
    block_ms: int = 500
    defaults: WorkerDefaults = field(default_factory=WorkerDefaults)  # model/effort per runtime
    cancel_grace_s: float = 5.0  # after SIGTERM to a cancelled agent, SIGKILL
    agents: Mapping[str, AgentFound] = field(default_factory=dict)  # the CLIs found at start
    sandbox: Sandbox | None = None  # checked at start; None: checked by the Worker


@dataclass
class Holding:
    """A job this worker holds, from the read of its message: the message (its lease) and the
    task that claims and runs it."""

    message: Message
    task: asyncio.Task[None] | None = None
    lost: bool = False  # the lease went to someone else: never settle, never write


class Worker:
    def __init__(self, client: Client, settings: Settings, config: WorkerConfig) -> None:
        self.client, self.settings, self.config = client, settings, config
        self.keys = Keys(settings.prefix, settings.partitions)
        self.store = EventStore(client, self.keys, settings.command_ttl_s)
        self.dispatch = Dispatch(client, self.keys)
        self.registry = Registry(client, self.keys)
        self.policy = RetryPolicy(settings.retry_base_s, settings.retry_cap_s)
        execution = settings.execution
        # Agents and git run in other folders than ours: every path they get is absolute.
        settings = replace(settings, data_dir=Path(settings.data_dir).resolve())
        self.tools = RunTools(
            settings=settings, defaults=config.defaults,
            output=OutputStream(client, self.keys, execution.output_max_entries),
            artifacts=FileArtifactStore(Path(settings.data_dir) / "artifacts",
                                        execution.artifact_max_bytes),
            cancel_grace_s=config.cancel_grace_s, agents=config.agents,
            live=LiveChannels(client, self.keys) if execution.live_sessions else None,
            sandbox=config.sandbox or prepare_sandbox(execution.sandbox, settings.data_dir),
        )  # fmt: skip
        self.holding: dict[str, Holding] = {}
        self.started = time.time()
        self.heartbeat_s = max(0.2, min(5.0, config.lease_s / 4))
        self._sigs: list[str] = []
        self._sigs_at = 0.0
        self._pause, self._pause_at = "off", 0.0
        self._freed = asyncio.Event()  # set when a job ends: its slot can take the next one
        self._to_settle: list[tuple[str, Message]] = []
        self._settle_wanted = asyncio.Event()

    # ---- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Take work until `stop`; then take no more, let running jobs finish for the grace
        period, release what is left, and leave the registry."""
        # Both run until `closing`, which comes after the drain (leases are kept alive while
        # running jobs finish); they end on their own: a cancel could land inside a client
        # call that swallows it, and the stop would then hang.
        closing = asyncio.Event()
        helpers = [asyncio.create_task(self._heartbeat(closing)),
                   asyncio.create_task(self._settler(closing))]  # fmt: skip
        try:
            while not stop.is_set():
                try:
                    if await self._may_take():
                        await self._take()
                        continue
                except CairnError as e:
                    # The server restarts, say: nothing was read, or what was read is held
                    # and claimed (or given back) by its own task; try again shortly.
                    log.warning("taking work failed: %s", e.message)
                    await wait_for_stop(stop, 1.0)
                    continue
                # Full or paused: until a job finishes, the pause is re-read or we stop.
                self._freed.clear()
                await _wait_any(stop, self._freed, PAUSE_READ_S)
        finally:
            await self._drain()
            closing.set()
            self._settle_wanted.set()
            await asyncio.gather(*helpers)
            for pause in RETRY_S:  # a few tries; what stays unsettled, the reaper settles
                if await self._settle_now():
                    break
                await asyncio.sleep(pause)
            with suppress(CairnError):
                await self.registry.leave(self.config.worker_id)

    async def _may_take(self) -> bool:
        if len(self.holding) >= self.config.concurrency:
            return False
        return await self._pause_mode() == "off"

    async def _take(self) -> None:
        sigs = await self._eligible()
        if not sigs:  # nothing we can take exists yet: wait as a blocking read would
            await asyncio.sleep(self.config.block_ms / 1000)
            return
        free = self.config.concurrency - len(self.holding)
        messages = await self.dispatch.read(
            self.config.worker_id, sigs, count=free, block_ms=self.config.block_ms
        )
        messages.sort(key=lambda m: run_order_key(m.priority, m.created, m.job_id))
        for message in messages[free:]:  # more than we can run: back for the scheduler to place
            self._settle_later(message.job_id, message)
        messages = messages[:free]
        # Held from here on: the heartbeat renews their leases while they are claimed.
        holdings = [Holding(message) for message in messages]
        for holding in holdings:
            self.holding[holding.message.job_id] = holding
        try:
            known = await load_jobs(self.store, [m.job_id for m in messages])
        except CairnError:
            known = {}  # each claim reads its own job
        for holding in holdings:
            # Claims run side by side (in run order they start), each in its job's own task.
            job = known.get(holding.message.job_id)
            holding.task = asyncio.create_task(self._claim_and_run(holding, job))

    async def _claim_and_run(self, holding: Holding, known: Job | None) -> None:
        message = holding.message
        try:
            job = await self._claim(message, known)
        except DomainError as e:
            log.info("not claimed %s: %s", message.job_id, e.message)
            job = None
        except CairnError as e:
            # The store stayed away: give the message back to the scheduler (the job is
            # still queued; had the claim landed unseen, the reaper's sweep takes it back).
            log.warning("claim of %s failed, given back: %s", message.job_id, e.message)
            job = None
        except BaseException:
            self._let_go(message.job_id)
            raise
        if job is None or job.status != "running" or job.worker_id != self.config.worker_id:
            self._settle_later(message.job_id, message)
            self._let_go(message.job_id)
            return
        await self._run(holding, job)

    async def _claim(self, message: Message, known: Job | None) -> Job:
        """Claim, retried while the store is unavailable for up to half a lease (the claim's
        command id is the message's, so a claim whose reply was lost lands once)."""
        deadline = time.monotonic() + self.config.lease_s / 2
        for attempt in range(10_000):
            try:
                return await claims.claim_job(
                    self.store, message.job_id, self.config.worker_id, self.settings.flags,
                    known, lease_ms=int(self.config.lease_s * 1000),
                    command_id=f"claim:{message.signature}:{message.id}", retrying=attempt > 0,
                )  # fmt: skip
            except InfrastructureError:
                if time.monotonic() > deadline:
                    raise
                known = None
                await asyncio.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
        raise AssertionError("unreachable")

    def _let_go(self, job_id: str) -> None:
        self.holding.pop(job_id, None)
        self._freed.set()

    def _settle_later(self, job_id: str, message: Message) -> None:
        """Settle the message soon, in one call with the others that ended meanwhile. The job's
        outcome is already written; until then the message only keeps its place in the limits
        (if we die first, the reaper settles it)."""
        self._to_settle.append((job_id, message))
        self._settle_wanted.set()

    async def _settler(self, closing: asyncio.Event) -> None:
        failures = 0
        while not closing.is_set():
            await self._settle_wanted.wait()
            self._settle_wanted.clear()
            if await self._settle_now():
                failures = 0
                continue
            # Kept for the next try: a message is settled once its outcome is written, and
            # until then it keeps its place in the limits (the job is not run again).
            await wait_for_stop(closing, RETRY_S[min(failures, len(RETRY_S) - 1)])
            failures += 1
            self._settle_wanted.set()

    async def _settle_now(self) -> bool:
        batch, self._to_settle = self._to_settle, []
        try:
            await self.dispatch.settle_many(batch)
        except CairnError as e:
            self._to_settle = batch + self._to_settle
            log.warning("settling %d messages waits for the store: %s", len(batch), e.message)
            return False
        return True

    async def _eligible(self) -> list[str]:
        if time.monotonic() - self._sigs_at > 0.5:
            known = await self.dispatch.signatures()
            self._sigs = [s for s in known if eligible(s, self.config.capabilities)]
            for sig in self._sigs:
                await self.dispatch.ensure_group(sig)
            self._sigs_at = time.monotonic()
        return self._sigs

    async def _heartbeat(self, closing: asyncio.Event) -> None:
        while not closing.is_set():
            with suppress(CairnError):
                await self.registry.beat(self.record())
                live = [h.message for h in self.holding.values() if not h.lost]
                if live:
                    await self.dispatch.keep_alive(self.config.worker_id, live)
            await wait_for_stop(closing, self.heartbeat_s)

    def record(self) -> dict[str, Any]:
        return {
            "id": self.config.worker_id,
            "capabilities": self.config.capabilities,
            "sandbox": self.tools.sandbox.summary(),
            "live_sessions": self.tools.live is not None,
            "concurrency": self.config.concurrency,
            "lease_s": self.config.lease_s,
            "heartbeat_s": self.heartbeat_s,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self.started,
            "running": sorted(self.holding),
        }

    async def _drain(self) -> None:
        tasks = [h.task for h in self.holding.values() if h.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.config.stop_grace_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with suppress(asyncio.CancelledError):
                    await task

    # ---- one job ----------------------------------------------------------------------------

    async def _run(self, holding: Holding, job: Job) -> None:
        me = self.config.worker_id
        held = Held(self.store, job, me, self.settings.flags, self.policy)
        run = JobRun(job, held, self.tools)
        finished: Stage | None = None  # closed in the same append that opens the next stage
        stage: str | None = None
        recorded = False  # the job's outcome is in the log: only then is its message settled
        try:
            for stage in STAGES:
                await self._hold_while_quiesced()
                held.open_stage(finished, stage)
                if run.waits(stage) and (await held.flush()).status == "cancelled":
                    recorded = True
                    return
                outcome, detail = await run.stage(stage)
                finished = (stage, outcome, detail)
            assert finished is not None
            await held.succeed(finished, run.summary, run.publish_outcome)
            recorded = True
        except StageFailed as failed:
            recorded = await self._report(
                holding, held.fail(failed.stage, failed.error, retryable=failed.retryable,
                                   retry_after_s=failed.retry_after_s)
            )
        except Cancelled as cancelled:
            recorded = await self._report(holding, held.cancelled(stage, cancelled.where))
        except StaleLease:
            holding.lost = True
            log.warning("lost the lease on %s (epoch %s); stopped working on it", job.id, job.epoch)
        except asyncio.CancelledError:  # stopping past the grace period: give the job back
            recorded = await self._report(holding, held.release(stage, "the worker stopped"))
        except CairnError as e:
            error = {"code": e.code, "message": e.message}
            recorded = await self._report(
                holding, held.fail(stage or "prepare", error, retryable=True)
            )
        except Exception as e:  # a bug of ours or a tool's surprise: the job fails, retryably
            log.exception("job %s failed in %s", job.id, stage)
            error = {"code": "worker_error", "message": f"{type(e).__name__} in {stage}"}
            recorded = await self._report(
                holding, held.fail(stage or "prepare", error, retryable=True)
            )
        finally:
            if recorded and not holding.lost:
                await self._after(run, held)
            run.close()
            if recorded and not holding.lost:
                self._settle_later(job.id, holding.message)
            elif not holding.lost:
                # Not written (the store stayed away while stopping): the message stays
                # pending, so the reaper takes the job back after its lease.
                log.warning("outcome of %s not recorded; left for the reaper", job.id)
            self._let_go(job.id)

    async def _after(self, run: JobRun, held: Held) -> None:
        try:
            await run.after(held.job)
        except Exception:  # what follows a run must never lose the run's outcome
            log.exception("after the run of %s", held.job.id)

    async def _hold_while_quiesced(self) -> None:
        """Quiesce holds running jobs here, between stages, until it is lifted."""
        while await self._pause_mode() == "quiesce":
            await asyncio.sleep(PAUSE_READ_S)

    async def _pause_mode(self) -> str:
        """The pause mode, read at most every PAUSE_READ_S (it is a switch people flip); while
        the store is unavailable the last mode read holds."""
        if time.monotonic() - self._pause_at > PAUSE_READ_S:
            with suppress(CairnError):
                self._pause = await self.registry.pause_mode()
            self._pause_at = time.monotonic()
        return self._pause

    async def _report(self, holding: Holding, write: Coroutine[Any, Any, Job]) -> bool:
        """A final write; True once it is in the log. Refused only if the lease was lost
        meanwhile (then nothing to do: the job is someone else's)."""
        try:
            await write
        except StaleLease as e:
            holding.lost = True
            log.warning("late write refused: %s", e.message)
            return False
        except CairnError as e:
            log.warning("final write failed: %s", e.message)
            return False
        return True




async def _wait_any(stop: asyncio.Event, other: asyncio.Event, seconds: float) -> None:
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(other.wait())]
    _done, pending = await asyncio.wait(waits, timeout=seconds, return_when="FIRST_COMPLETED")
    for task in pending:
        task.cancel()
