"""Running a command: load what it depends on, decide, append atomically, retry on conflict."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import msgspec

from cairn.domain.decision import Decision
from cairn.domain.errors import VersionConflict
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.store import AppendResult, EventStore, Guard, Meta, NewEvent, StreamWrite

MAX_ATTEMPTS = 8
# A worker's or the reaper's write carries a command id so that, retried after a reply was
# lost, it lands once; the record only has to outlive the retries.
RETRY_RECORD_TTL_S = 900


@dataclass(frozen=True, slots=True)
class Plan:
    """What a command writes: per aggregate, the version it was read at and its new events,
    and the streams that must be unchanged (guards)."""

    writes: list[StreamWrite] = field(default_factory=list)
    guards: list[Guard] = field(default_factory=list)
    subject_version: int = 0  # the subject's version before the write


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command did: the subject's new version and the log position to wait for."""

    id: str
    version: int
    position: str  # "<partition>:<log entry id>", "" if nothing was written
    duplicate: bool = False
    written: int = 0


async def run_command(
    store: EventStore,
    subject_id: str,
    plan: Callable[[], Awaitable[Plan]],
    *,
    meta: Meta,
    command_id: str | None = None,
    command_ttl_s: int | None = None,
    retry_on_conflict: bool = True,
    precheck: bool = True,
) -> CommandResult:
    """Plan (read and decide) and append; on a version conflict plan again (unless the caller
    pinned an expected version). A retried command id returns the first result: read before
    planning (`precheck`, for a decision that would refuse what the first one did), else
    answered by the append itself."""
    partition = store.keys.partition_of_id(subject_id)
    if command_id is not None and precheck:
        first = await store.command_record(partition, command_id)
        if first is not None:
            return _result(subject_id, first, first.versions[0] if first.versions else 0, 0)
    for attempt in range(MAX_ATTEMPTS):
        planned = await plan()
        if not planned.writes:
            return CommandResult(subject_id, planned.subject_version, "")
        try:
            appended = await store.append(
                partition, planned.writes, guards=planned.guards, meta=meta,
                command_id=command_id, command_ttl_s=command_ttl_s,
            )  # fmt: skip
        except VersionConflict:
            if not retry_on_conflict or attempt == MAX_ATTEMPTS - 1:
                raise
            continue
        version = appended.versions[0] if appended.versions else planned.subject_version
        written = sum(len(w.events) for w in planned.writes)
        return _result(subject_id, appended, version, written)
    raise AssertionError("unreachable")


class AtVersion(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def version(self) -> int: ...


A = TypeVar("A", bound=AtVersion)


def at_version(state: A, expected_version: int | None) -> A:
    """`state`, if it is at the version the caller expects (or expects none)."""
    if expected_version is not None and state.version != expected_version:
        raise VersionConflict(
            f"{state.id} is at version {state.version}, not the expected {expected_version}",
            aggregate_id=state.id,
            expected_version=expected_version,
            actual_version=state.version,
        )
    return state


def _result(subject_id: str, appended: AppendResult, version: int, written: int) -> CommandResult:
    partition = subject_id.split("-")[1]
    position = f"{int(partition)}:{appended.position}" if appended.position else ""
    return CommandResult(subject_id, version, position, appended.duplicate, written)


def command_id_for(action: str, subject: str, idempotency_key: str | None) -> str | None:
    """The idempotency record name of a command, scoped to its action and subject."""
    if not idempotency_key:
        return None
    return hashlib.blake2b(
        f"{action}\0{subject}\0{idempotency_key}".encode(), digest_size=16
    ).hexdigest()


def id_for_key(keys: Keys, kind: str, project: str, idempotency_key: str | None) -> str:
    """A new aggregate id; the same idempotency key gives the same id, so retries converge."""
    if not idempotency_key:
        return keys.new_id(kind, project)
    digest = hashlib.blake2b(f"{kind}\0{project}\0{idempotency_key}".encode(), digest_size=16)
    return f"{kind}-{keys.partition_of(project):02d}-{digest.hexdigest()[:26]}"


def writes(decision: Decision, versions: Mapping[str, int]) -> list[StreamWrite]:
    """A decision as stream writes, in its order, each expecting the version its aggregate was
    read at (one missing from `versions` is new: version 0); aggregates with no new event are
    left out."""
    return [
        StreamWrite(
            agg,
            versions.get(agg, 0),
            [NewEvent(e.TYPE, msgspec.to_builtins(e), e.SCHEMA) for e in events],
        )
        for agg, events in decision.items()
        if events
    ]


def guards_of(ids: Sequence[str], versions: dict[str, int], written: set[str]) -> list[Guard]:
    return [Guard(i, versions[i]) for i in ids if i not in written and i in versions]


S = TypeVar("S")


async def load_states(
    store: EventStore, ids: Iterable[str], kind: str, fold: Callable[[list[Envelope]], S | None]
) -> dict[str, S]:
    """The current state of each existing aggregate of `kind` among `ids`, folded from its
    stream; unknown ids (or ids of another kind) are left out."""
    prefix = f"{kind}-"
    wanted = [
        i for i in dict.fromkeys(ids) if i.startswith(prefix) and store.keys.is_aggregate_id(i)
    ]
    if not wanted:
        return {}
    found: dict[str, S] = {}
    for aggregate_id, events in (await store.read_aggregates(wanted)).items():
        state = fold(events)
        if state is not None:
            found[aggregate_id] = state
    return found
