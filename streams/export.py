"""Backup and restore from the log: every event of every partition log (archived ones among
them, in their places) to a stream of JSON lines, and those lines back into an install with the
same partition count. An event keeps its log position (its entry id) and its fields byte for
byte, and each aggregate's index is laid again from them, so the read models rebuilt from an
import equal the source's. An import puts every event back in the log."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from cairn.domain.errors import CairnError
from cairn.streams.archive import Archive, ArchivedEvent, default_archive
from cairn.streams.driver import Client
from cairn.streams.envelope import position_key, text
from cairn.streams.keys import Keys

FORMAT = "cairn-export"
VERSION = 1
BATCH = 5_000
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ExportHeader:
    partitions: int
    events: int
    prefix: str

    def line(self) -> bytes:
        return orjson.dumps({"format": FORMAT, "version": VERSION, "partitions": self.partitions,
                             "events": self.events, "prefix": self.prefix})  # fmt: skip


def _quiet(done: int, total: int) -> None:
    pass


async def count_events(client: Client, keys: Keys) -> int:
    async with client.pipeline(transaction=False) as pipe:
        for p in keys.all_partitions():
            pipe.xlen(keys.log(p))
        return sum(int(n) for n in await pipe.execute())


async def write_export(
    client: Client, keys: Keys, write: Callable[[bytes], object], progress: Progress = _quiet,
    archive: Archive | None = None,
) -> int:  # fmt: skip
    """Write the header, then every event of each partition in log order, the events moved to
    `archive` (else the install's archive under the process's archive root) in their places,
    one JSON line each: {"p": partition, "pos": entry id, "f": fields}."""
    archive = archive if archive is not None else default_archive(keys.prefix)
    if archive is not None and archive.exists():
        with archive.writing():  # no move meanwhile: it could slip between the two reads
            return await _write_all(client, keys, write, progress, archive)
    return await _write_all(client, keys, write, progress, None)


async def _write_all(
    client: Client, keys: Keys, write: Callable[[bytes], object], progress: Progress,
    archive: Archive | None,
) -> int:  # fmt: skip
    total = await count_events(client, keys) + (archive.count()[1] if archive else 0)
    write(ExportHeader(keys.partitions, total, keys.prefix).line() + b"\n")
    done = 0
    for p in keys.all_partitions():
        archived = archive.iter_partition(p) if archive is not None else iter(())
        waiting = next(archived, None)
        after = "-"
        while True:
            entries: Any = await client.xrange(keys.log(p), min=after, count=BATCH)
            for entry_id, fields in entries:
                position = text(entry_id)
                # The archived events before this one, then it (a copy of it in the archive, of
                # a move that did not finish, is written once).
                while waiting is not None and waiting.key <= position_key(position):
                    if waiting.position != position:
                        write(waiting.line())
                        done += 1
                    waiting = next(archived, None)
                fields_text = {text(k): text(v) for k, v in fields.items()}
                write(ArchivedEvent(p, position, fields_text).line())
            done += len(entries)
            progress(done, max(total, done))
            if not entries:
                break
            after = f"({text(entries[-1][0])}"
        while waiting is not None:
            write(waiting.line())
            done += 1
            waiting = next(archived, None)
        progress(done, max(total, done))
    return done


def read_header(line: bytes, keys: Keys) -> ExportHeader:
    """The export's header, refused unless it is one of ours with this install's partitions."""
    try:
        values = orjson.loads(line)
        ok = values.get("format") == FORMAT and int(values.get("version", 0)) <= VERSION
    except (orjson.JSONDecodeError, AttributeError, ValueError):
        ok = False
    if not ok:
        raise CairnError(f"not a Cairn export (its first line is not a {FORMAT} header)")
    header = ExportHeader(int(values["partitions"]), int(values["events"]), str(values["prefix"]))
    if header.partitions != keys.partitions:
        raise CairnError(
            f"the export has {header.partitions} partitions and this install "
            f"{keys.partitions}: aggregate ids name their partition, so import into an install "
            f"with CAIRN_PARTITIONS={header.partitions}"
        )
    return header


async def import_lines(
    client: Client, keys: Keys, lines: Iterable[bytes], total: int, progress: Progress = _quiet
) -> int:
    """Append the exported events to this install's logs at their own positions and lay each
    aggregate's index again. Into an empty install; an import that stopped midway can be run
    again: events at or before a log's last entry are taken as imported and skipped (an install
    whose logs hold anything else is refused). Returns the events written."""
    last = await _last_positions(client, keys)
    matched: set[int] = set()  # partitions whose last entry is the export's event there
    written = done = 0
    batch: list[tuple[int, str, dict[str, str]]] = []
    for raw in lines:
        if not raw.strip():
            continue
        values = orjson.loads(raw)
        partition, position, fields = int(values["p"]), str(values["pos"]), values["f"]
        done += 1
        there = last[partition]
        if there is not None:
            if position_key(position) < there[0]:
                continue
            if position_key(position) == there[0] and fields.get("id") == there[1]:
                matched.add(partition)
                continue
            if partition not in matched:
                raise _not_empty(keys, partition)
        batch.append((partition, position, fields))
        if len(batch) >= BATCH:
            written += await _write_batch(client, keys, batch)
            batch = []
            progress(done, total)
    written += await _write_batch(client, keys, batch)
    if unmatched := [p for p, there in last.items() if there is not None and p not in matched]:
        raise _not_empty(keys, unmatched[0])
    progress(done, max(total, done))
    return written


def _not_empty(keys: Keys, partition: int) -> CairnError:
    return CairnError(
        f"this install is not empty: {keys.log(partition)} holds events that are not this "
        "export's. Import into an empty install (another CAIRN_PREFIX, or a new server)"
    )


async def _last_positions(
    client: Client, keys: Keys
) -> dict[int, tuple[tuple[int, int], str] | None]:
    """Each log's last entry: its position and its event's id (None for an empty log)."""
    found: dict[int, tuple[tuple[int, int], str] | None] = {}
    for p in keys.all_partitions():
        entries: Any = await client.xrevrange(keys.log(p), count=1)
        if entries:
            entry_id, fields = entries[0]
            found[p] = (position_key(text(entry_id)), text(fields[b"id"]))
        else:
            found[p] = None
    return found


async def _write_batch(
    client: Client, keys: Keys, batch: list[tuple[int, str, dict[str, str]]]
) -> int:
    by_partition: dict[int, list[tuple[str, dict[str, str]]]] = {}
    for partition, position, fields in batch:
        by_partition.setdefault(partition, []).append((position, fields))
    for partition, events in by_partition.items():
        # One MULTI a partition (one hash slot): an event and its index entry land together,
        # so a stopped import leaves no event without its place in its aggregate's index.
        async with client.pipeline(transaction=True) as pipe:
            for position, fields in events:
                pipe.xadd(keys.log(partition), fields, id=position)  # type: ignore[arg-type]
                # The index is the aggregate's versions in order; the log holds them in order.
                pipe.rpush(keys.stream(fields["agg"]), position)
            await pipe.execute()
    return len(batch)
