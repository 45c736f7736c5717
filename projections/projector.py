"""Running projections: one consumer group per projection and generation on every partition
log, one active consumer per partition (a fenced lease), apply + XACK in one atomic script."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

from cairn.domain.errors import CairnError
from cairn.projections.generations import Space, generation_key
from cairn.projections.projection import Projection, load_documents
from cairn.projections.writes import Writes
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope, decode_entry
from cairn.streams.functions import STREAMS, Library, call_many
from cairn.streams.groups import ensure_group, read_groups
from cairn.streams.keys import Keys
from cairn.streams.leases import Leases
from cairn.streams.lifetime import wait_for_stop

log = logging.getLogger("cairn.projector")
# The projections layer's Lua (streams/functions.py): a batch applied under its lease.
PROJECTIONS = Library(
    "projections", {"apply": resources.files("cairn.projections").joinpath("apply.lua").read_text()}
)
APPLY = PROJECTIONS.function("apply")
LIBRARIES = (STREAMS, PROJECTIONS)  # all of Cairn's Lua, as the API loads it at its start
LINGER_S = 0.005
REPEAT_S = 30.0  # a warning that stays the same is said again after this long
ACTIVE_CONSUMER = "active"  # every lease holder consumes under this name, so pending resumes


def prepare_batch(
    projection: Projection, space: Space, events: list[Envelope], loaded: dict[str, Any],
    holder: str = "",
) -> tuple[list[str], list[Any]]:  # fmt: skip
    """The keys and arguments of the apply script for one batch of one partition."""
    writes = Writes()
    projection.apply(writes, space, events, loaded)
    writes.set(space.position_key, events[-1].position)
    writes.register(space)
    keys = [space.keys.projection_lock(space.partition, space.projection),
            generation_key(space.keys, space.projection, space.partition),
            space.keys.log(space.partition)]  # fmt: skip
    args = [holder, space.generation, space.group, events[-1].position, len(events), *writes.args()]
    return keys, args


class ProjectionWorker:
    """Keeps one projection up to date on every partition whose lease it holds: each round is
    one XREADGROUP over their logs, one pipeline of their loads, and one pipeline of fenced apply
    scripts (apply + XACK atomic per partition). A crash leaves a batch pending, never half
    applied; whoever holds the partition next takes it up first."""

    def __init__(
        self, client: Client, keys: Keys, projection: Projection, *,
        lease_ms: int = 15_000, batch: int = 2_000, block_ms: int = 1_000,
        partitions: Sequence[int] | None = None,
    ) -> None:  # fmt: skip
        self.client, self.keys, self.projection = client, keys, projection
        # A blocking read must end well inside the lease, or the lease lapses while we wait.
        self.lease_ms, self.batch, self.block_ms = lease_ms, batch, min(block_ms, lease_ms // 4)
        self.me = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.partitions = list(keys.all_partitions() if partitions is None else partitions)
        self.spaces: dict[int, Space] = {}
        self.pending: set[int] = set()  # partitions whose unacknowledged entries come first
        self.leases = Leases(client)
        self.applied = 0
        self._said, self._said_at = "", 0.0

    async def run(self, stop: asyncio.Event) -> None:
        renewed = 0.0
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() - renewed > self.lease_ms / 3000:
                        await self._hold()
                        renewed = time.monotonic()
                    if not self.spaces:
                        await wait_for_stop(stop, min(1.0, self.lease_ms / 3000))
                        continue
                    applied = self.applied
                    if not await self._round():
                        # A fence refused: what was read and not applied is pending again.
                        self.pending.update(self.spaces)
                        renewed = 0.0
                    if 0 < self.applied - applied < self.batch // 4:
                        # A trickle: let a few ms of events gather, so one round (a read, the
                        # loads, a pipeline of scripts) carries many. Costs LINGER_S of lag.
                        await asyncio.sleep(LINGER_S)
                except CairnError as e:
                    # The server restarts, or a rebuild dropped a group: take up again after,
                    # pending entries first (a batch may have been read and not applied).
                    self._warn(str(e))
                    self.pending.update(self.spaces)
                    await wait_for_stop(stop, 0.2)
                    renewed = 0.0
        finally:
            with contextlib.suppress(CairnError):
                for partition in list(self.spaces):
                    await self.leases.release(self._lock(partition), self.me)

    def _warn(self, said: str) -> None:
        """A warning, not repeated while it stays the same (a store down for a minute is one
        line a half minute, not hundreds)."""
        now = time.monotonic()
        if said != self._said or now - self._said_at > REPEAT_S:
            log.warning("projection %s: %s", self.projection.name, said)
            self._said, self._said_at = said, now

    def _lock(self, partition: int) -> str:
        return self.keys.projection_lock(partition, self.projection.name)

    async def _hold(self) -> None:
        """Take or renew the lease of every partition we can; follow generation switches."""
        locks = [self._lock(p) for p in self.partitions]
        holding, generations = await asyncio.gather(
            self.leases.hold_many(locks, self.me, self.lease_ms),
            self.client.mget([generation_key(self.keys, self.projection.name, p)
                              for p in self.partitions]),
        )  # fmt: skip
        held: dict[int, Space] = {
            p: Space(self.keys, self.projection.name, p, int(generation or 1))
            for p, ours, generation in zip(self.partitions, holding, generations, strict=True)
            if ours
        }
        for p, space in held.items():
            if self.spaces.get(p) != space:
                await ensure_group(self.client, self.keys.log(p), space.group)
                self.pending.add(p)
        self.spaces = held

    async def _round(self) -> bool:
        batches = await self._read()
        if not batches:
            return True
        # A round is three round trips whatever the number of partitions: the read, the loads,
        # and the fenced apply scripts.
        spaced = [(self.spaces[p], events) for p, events in batches.items()]
        loaded = await load_documents(self.client, self.projection, spaced)
        prepared = [
            prepare_batch(self.projection, space, events, docs, self.me)
            for (space, events), docs in zip(spaced, loaded, strict=True)
        ]
        results = await self._apply(prepared)
        self.applied += sum(len(e) for e, ok in zip(batches.values(), results, strict=True) if ok)
        return all(results)

    async def _apply(self, prepared: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """The apply scripts, in one pipeline (a batch refused for a lost script is sent again,
        never one that was applied: it would be counted twice)."""
        results = await call_many(self.client, APPLY, prepared)
        for result in results:
            if isinstance(result, Exception):
                raise result  # the round fails; what was not applied is read again
        return results

    async def _read(self) -> dict[int, list[Envelope]]:
        """The next batch of each held partition: its pending entries first (after taking it
        over), else new ones, waiting up to block_ms for any."""
        by_group: dict[str, dict[int, str]] = {}
        for p, space in self.spaces.items():
            by_group.setdefault(space.group, {})[p] = "0" if p in self.pending else ">"
        batches: dict[int, list[Envelope]] = {}
        kind = f"{self.projection.kind}.".encode()
        for group, partitions in by_group.items():
            streams = {self.keys.log(p): at for p, at in partitions.items()}
            block = None if any(at == "0" for at in partitions.values()) else self.block_ms
            # At most about `batch` events a round in all, so a projection catching up a
            # backlog does not hold the process's loop (and the other projections) for long.
            count = max(16, self.batch // len(partitions))
            reply = await read_groups(
                self.client, group, ACTIVE_CONSUMER, streams, count=count, block_ms=block
            )
            got = {self.keys.partition_of_log(key): entries for key, entries in reply}
            for p, at in partitions.items():
                # Events of other kinds only move the position: their data is not decoded.
                events = [
                    decode_entry(i, f, with_data=f[b"type"].startswith(kind))
                    for i, f in got.get(p, [])
                    if f
                ]
                if at == "0" and not events:
                    self.pending.discard(p)  # caught up on what a previous holder left
                if events:
                    batches[p] = events
        return batches


async def run_projections(
    client: Client,
    keys: Keys,
    projections: list[Projection],
    stop: asyncio.Event,
    *,
    lease_ms: int = 15_000,
    loops: int = 4,
) -> None:
    """Run every projection on every partition it can hold until `stop` is set: `loops`
    loops per projection, each over its own share of the partitions, so that one loop's
    reads and writes overlap another's work."""
    shares = [list(keys.all_partitions())[i::loops] for i in range(loops)]
    workers = [
        ProjectionWorker(client, keys, p, lease_ms=lease_ms, partitions=share)
        for p in projections
        for share in shares
        if share
    ]
    await asyncio.gather(*(w.run(stop) for w in workers))
