"""The worker daemon: reads the dispatch streams it is eligible for, claims, runs stages, and
reports every step as a fenced command. One worker id runs at most `concurrency` jobs."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from commands import runs
from commands.held import Held, Stage
from commands.settings import Settings
from domain.dispatch import eligible
from domain.errors import CairnError, DomainError, StaleLease
from domain.job import Job, RetryPolicy
from streams.dispatch import Dispatch, Message
from streams.keys import Keys
from streams.registry import Registry
from streams.store import EventStore
from worker import executor
from worker.executor import Cancelled, ExecutorConfig, Run, StageFailed

log = logging.getLogger("cairn.worker")
STAGES = ("prepare", "execute", "publish")
PAUSE_READ_S = 0.2


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    worker_id: str
    capabilities: list[str]
    concurrency: int = 1
    lease_s: float = 120.0
    stop_grace_s: float = 30.0
    block_ms: int = 500


@dataclass
class Holding:
    """A job this worker holds: the dispatch message (its lease) and the claim's epoch."""

    message: Message
    job: Job
    task: asyncio.Task[None] | None = None
    lost: bool = False  # the lease went to someone else: never settle, never write


class Worker:
    def __init__(self, client: aioredis.Redis, settings: Settings, config: WorkerConfig) -> None:
        self.client, self.settings, self.config = client, settings, config
        self.keys = Keys(settings.prefix, settings.partitions)
        self.store = EventStore(client, self.keys, settings.command_ttl_s)
        self.dispatch = Dispatch(client, self.keys)
        self.registry = Registry(client, self.keys)
        self.policy = RetryPolicy(settings.retry_base_s, settings.retry_cap_s)
        self.exec_config = ExecutorConfig(artifacts_dir=Path(settings.data_dir) / "artifacts")
        self.holding: dict[str, Holding] = {}
        self.started = time.time()
        self.heartbeat_s = max(0.2, min(5.0, config.lease_s / 4))
        self._sigs: list[str] = []
        self._sigs_at = 0.0
        self._pause, self._pause_at = "off", 0.0

    # ---- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Take work until `stop`; then take no more, let running jobs finish for the grace
        period, release what is left, and leave the registry."""
        beat = asyncio.create_task(self._heartbeat(stop))
        try:
            while not stop.is_set():
                if await self._may_take():
                    await self._take()
                else:
                    await _wait(stop, 0.1)
        finally:
            await self._drain()
            beat.cancel()
            with suppress(asyncio.CancelledError):
                await beat
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
        messages.sort(key=lambda m: (-m.priority, m.created, m.job_id))
        for i, message in enumerate(messages):
            if i >= free:  # more than we can run: hand it back for the scheduler to re-place
                await self.dispatch.settle(message.job_id, message)
                await self.dispatch.forget([message.job_id])
                continue
            try:
                job = await runs.claim_job(
                    self.store, message.job_id, self.config.worker_id, self.settings.flags
                )
            except DomainError as e:
                log.info("not claimed %s: %s", message.job_id, e.message)
                await self.dispatch.settle(message.job_id, message)
                continue
            if job.status != "running":  # its task could not start: the run was cancelled
                await self.dispatch.settle(message.job_id, message)
                continue
            holding = Holding(message, job)
            self.holding[job.id] = holding
            holding.task = asyncio.create_task(self._run(holding))

    async def _eligible(self) -> list[str]:
        if time.monotonic() - self._sigs_at > 0.5:
            known = await self.dispatch.signatures()
            self._sigs = [s for s in known if eligible(s, self.config.capabilities)]
            for sig in self._sigs:
                await self.dispatch.ensure_group(sig)
            self._sigs_at = time.monotonic()
        return self._sigs

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        while True:
            with suppress(CairnError, aioredis.RedisError, OSError):
                await self.registry.beat(self.record())
                live = [h.message for h in self.holding.values() if not h.lost]
                if live:
                    await self.dispatch.keep_alive(self.config.worker_id, live)
            await asyncio.sleep(self.heartbeat_s)

    def record(self) -> dict[str, Any]:
        return {
            "id": self.config.worker_id,
            "capabilities": self.config.capabilities,
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

    async def _run(self, holding: Holding) -> None:
        job, me = holding.job, self.config.worker_id
        held = Held(self.store, job, me, self.settings.flags, self.policy)
        run = Run(job, job.epoch)
        finished: Stage | None = None  # closed in the same append that opens the next stage
        stage: str | None = None
        try:
            for stage in STAGES:
                await self._hold_while_quiesced()
                held.open_stage(finished, stage)
                if executor.waits(stage, job) and (await held.flush()).status == "cancelled":
                    return
                outcome, detail = await self._stage(stage, run, held)
                finished = (stage, outcome, detail)
            assert finished is not None
            await held.succeed(finished, run.artifacts, run.summary, run.publish_outcome)
        except StageFailed as failed:
            await self._report(held.fail(failed.stage, failed.error, retryable=failed.retryable))
        except Cancelled:
            await self._report(held.cancelled(stage))
        except StaleLease:
            holding.lost = True
            log.warning("lost the lease on %s (epoch %s); stopped working on it", job.id, job.epoch)
        except asyncio.CancelledError:  # stopping past the grace period: give the job back
            await self._report(held.release(stage, "the worker stopped"))
        except CairnError as e:
            error = {"code": e.code, "message": e.message}
            await self._report(held.fail(stage or "prepare", error, retryable=True))
        finally:
            executor.cleanup(run)
            if not holding.lost:
                with suppress(CairnError, aioredis.RedisError):
                    await self.dispatch.settle(job.id, holding.message)
            self.holding.pop(job.id, None)

    async def _stage(self, stage: str, run: Run, held: Held) -> tuple[str, dict[str, Any]]:
        if stage == "prepare":
            return "succeeded", await executor.prepare(run, self.exec_config)
        if stage == "execute":
            return "succeeded", await executor.execute(run, self.exec_config, held.cancel_requested)
        return await executor.publish(run, self.exec_config)

    async def _hold_while_quiesced(self) -> None:
        """Quiesce holds running jobs here, between stages, until it is lifted."""
        while await self._pause_mode() == "quiesce":
            await asyncio.sleep(0.2)

    async def _pause_mode(self) -> str:
        """The pause mode, read at most every PAUSE_READ_S (it is a switch people flip)."""
        if time.monotonic() - self._pause_at > PAUSE_READ_S:
            self._pause = await self.registry.pause_mode()
            self._pause_at = time.monotonic()
        return self._pause

    async def _report(self, write: Any) -> None:
        """A final write; refused only if the lease was lost meanwhile (then nothing to do)."""
        try:
            await write
        except StaleLease as e:
            log.warning("late write refused: %s", e.message)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
