"""The archive: events moved out of the partition logs into compressed segment files, and an
index, under `<data dir>/archive/<prefix>/`, read back as if they had never left.

A segment (`segments/NNNNNNNN.jsonl.gz`) is a run of gzip members ("frames"), each holding the
events of whole aggregates of one partition as JSON lines, `{"p": partition, "pos": log entry
id, "f": {field: value}}` (the line `cairn export` writes), the fields as the log held them;
`zcat` reads a segment whole. The index (`index.sqlite`) maps each aggregate's archived versions
to its frame, and each frame to its partition and its first and last positions, so an
aggregate's events cost one frame read and a partition's read in log order reads only the
frames past where it starts. A segment and its index rows are on disk (fsync) before any event
leaves the log (streams/retention.py). An aggregate index element `a` says "this version is in
the archive"; the list keeps its length, which is the aggregate's version."""

from __future__ import annotations

import fcntl
import gzip
import heapq
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from cairn.domain.errors import InfrastructureError
from cairn.streams.envelope import Envelope, position_key

MARKER = "a"  # an aggregate index element whose event is in the archive
FRAME_BYTES = 64 * 1024  # a frame closes after the aggregate that takes it past this
CACHED_FRAMES = 64
SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
  id INTEGER PRIMARY KEY, file TEXT NOT NULL, written TEXT NOT NULL,
  aggregates INTEGER NOT NULL, events INTEGER NOT NULL, bytes INTEGER NOT NULL,
  raw_bytes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS frames (
  segment INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
  partition INTEGER NOT NULL, first_ms INTEGER NOT NULL, first_seq INTEGER NOT NULL,
  last_ms INTEGER NOT NULL, last_seq INTEGER NOT NULL, events INTEGER NOT NULL,
  PRIMARY KEY (segment, offset)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS frames_by_end ON frames (partition, last_ms, last_seq);
CREATE TABLE IF NOT EXISTS aggregates (
  aggregate TEXT NOT NULL, first_version INTEGER NOT NULL, last_version INTEGER NOT NULL,
  segment INTEGER NOT NULL, offset INTEGER NOT NULL,
  PRIMARY KEY (aggregate, first_version)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aggregates_by_frame ON aggregates (segment, offset);
"""


@dataclass(frozen=True, slots=True)
class ArchivedEvent:
    """One event as the log held it: its partition, its log position and its fields."""

    partition: int
    position: str
    fields: dict[str, str]

    @property
    def key(self) -> tuple[int, int]:
        return position_key(self.position)

    def line(self) -> bytes:
        return orjson.dumps({"p": self.partition, "pos": self.position, "f": self.fields}) + b"\n"

    def envelope(self) -> Envelope:
        f = self.fields
        return Envelope(
            id=f["id"], type=f["type"], agg=f["agg"], ver=int(f["ver"]), ts=f["ts"],
            actor=f["actor"], corr=f["corr"], cause=f["cause"], schema=int(f["schema"]),
            data=orjson.loads(f["data"]), position=self.position,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ArchivedAggregate:
    """Versions `first_version`.. of one aggregate, to be archived together."""

    aggregate_id: str
    partition: int
    first_version: int
    events: Sequence[ArchivedEvent]


@dataclass(frozen=True, slots=True)
class Segment:
    id: int
    path: Path
    aggregates: int
    events: int
    bytes: int
    raw_bytes: int


class Archive:
    """The archive of one install (key prefix) at `root`; opened on first use, and empty (no
    file written) until something is archived."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._db: sqlite3.Connection | None = None
        self._frames: OrderedDict[tuple[int, int], list[ArchivedEvent]] = OrderedDict()
        self._files: dict[int, str] = {}

    @property
    def index_path(self) -> Path:
        return self.root / "index.sqlite"

    def exists(self) -> bool:
        return self._db is not None or self.index_path.exists()

    def _open(self, create: bool = False) -> sqlite3.Connection | None:
        if self._db is None:
            if not create and not self.index_path.exists():
                return None
            (self.root / "segments").mkdir(parents=True, exist_ok=True, mode=0o700)
            db = sqlite3.connect(self.index_path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the archive's write lock (one archiver at a time)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.root / "lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InfrastructureError(
                    f"another `cairn archive` is writing {self.root}: wait for it to finish"
                ) from None
            yield

    # ---- writing ------------------------------------------------------------------------

    def write_segment(self, aggregates: Sequence[ArchivedAggregate]) -> Segment:
        """Write `aggregates` to a new segment and index them, durably (the file and its
        folder fsynced, the index committed), before their events may leave the log."""
        db = self._open(create=True)
        assert db is not None
        number = int(db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM segments").fetchone()[0])
        path = self.root / "segments" / f"{number:08d}.jsonl.gz"
        frames, rows = [], []
        raw_total = events = 0
        partial = path.with_name(path.name + ".partial")
        with partial.open("wb") as out:
            for partition, group in _by_partition(aggregates):
                for batch in _frames(group):
                    raw = b"".join(line for _, lines in batch for line in lines)
                    batch_aggregates = [a for a, _ in batch]
                    packed = gzip.compress(raw, compresslevel=6, mtime=0)
                    offset = out.tell()
                    out.write(packed)
                    keys = [e.key for a in batch_aggregates for e in a.events]
                    first, last = min(keys), max(keys)
                    frames.append((number, offset, len(packed), partition, *first, *last,
                                   len(keys)))  # fmt: skip
                    rows += [(a.aggregate_id, a.first_version,
                              a.first_version + len(a.events) - 1, number, offset)
                             for a in batch_aggregates]  # fmt: skip
                    raw_total += len(raw)
                    events += len(keys)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        partial.replace(path)
        _fsync_dir(path.parent)
        written = datetime.now(UTC).isoformat(timespec="seconds")
        db.execute("BEGIN IMMEDIATE")
        try:
            segment = (number, path.name, written, len(aggregates), events, size, raw_total)
            db.execute("INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?)", segment)
            db.executemany("INSERT INTO frames VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", frames)
            # A later archive of the same versions (a move refused, then tried again) wins.
            db.executemany("INSERT OR REPLACE INTO aggregates VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return Segment(number, path, len(aggregates), events, size, raw_total)

    def forget(self, segment: int, aggregates: Sequence[ArchivedAggregate]) -> None:
        """Drop the index rows of `aggregates` in `segment`: their move was refused (they
        changed meanwhile), so their events are still in the log."""
        db = self._open()
        if db is None or not aggregates:
            return
        db.executemany(
            "DELETE FROM aggregates WHERE aggregate = ? AND first_version = ? AND segment = ?",
            [(a.aggregate_id, a.first_version, segment) for a in aggregates],
        )

    # ---- reading ------------------------------------------------------------------------

    def read_aggregate(self, aggregate_id: str, versions: Sequence[int]) -> dict[int, Envelope]:
        """The archived events of `aggregate_id` at `versions`, by version (those not found
        left out)."""
        db = self._open()
        if db is None or not versions:
            return {}
        low, high = min(versions), max(versions)
        rows = db.execute(
            "SELECT first_version, last_version, segment, offset FROM aggregates "
            "WHERE aggregate = ? AND last_version >= ? AND first_version <= ? "
            "ORDER BY first_version",
            (aggregate_id, low, high),
        ).fetchall()
        wanted, found = set(versions), {}
        for first, last, segment, offset in rows:
            for event in self._frame(segment, offset):
                if event.fields["agg"] != aggregate_id:
                    continue
                version = int(event.fields["ver"])
                if first <= version <= last and version in wanted:
                    found[version] = event.envelope()
        return found

    def iter_partition(
        self, partition: int, after: tuple[int, int] = (0, 0)
    ) -> Iterator[ArchivedEvent]:
        """The archived events of a partition strictly after position `after`, in log order
        (each position once)."""
        db = self._open()
        if db is None:
            return
        frames = db.execute(
            "SELECT segment, offset, first_ms, first_seq FROM frames WHERE partition = ? AND "
            "(last_ms > ? OR (last_ms = ? AND last_seq > ?)) ORDER BY first_ms, first_seq",
            (partition, after[0], after[0], after[1]),
        ).fetchall()
        heap: list[tuple[tuple[int, int], int, ArchivedEvent]] = []
        at = tie = 0
        last: tuple[int, int] | None = None
        while at < len(frames) or heap:
            # Frames overlap (an aggregate's events span its life): before taking the
            # smallest, load every frame that starts at or before it.
            while at < len(frames) and (not heap or tuple(frames[at][2:]) <= heap[0][0]):
                for event in self._live_events(frames[at][0], frames[at][1]):
                    if (key := event.key) > after:
                        heapq.heappush(heap, (key, tie, event))
                        tie += 1
                at += 1
            if not heap:
                continue
            key, _, event = heapq.heappop(heap)
            if key != last:
                last = key
                yield event

    def archived_versions(self, aggregate_ids: Sequence[str]) -> dict[str, int]:
        """The last archived version of each of `aggregate_ids` that has one."""
        db = self._open()
        if db is None:
            return {}
        found: dict[str, int] = {}
        for start in range(0, len(aggregate_ids), 500):
            chunk = list(aggregate_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            found.update(db.execute(
                f"SELECT aggregate, MAX(last_version) FROM aggregates WHERE aggregate IN ({marks}) "
                "GROUP BY aggregate", chunk,
            ).fetchall())  # fmt: skip
        return found

    def count(self) -> tuple[int, int]:
        """(aggregates, events) the index holds."""
        db = self._open()
        if db is None:
            return 0, 0
        aggregates = db.execute("SELECT COUNT(*) FROM aggregates").fetchone()[0]
        events = db.execute(
            "SELECT COALESCE(SUM(last_version - first_version + 1), 0) FROM aggregates"
        ).fetchone()[0]
        return int(aggregates), int(events)

    def _live_events(self, segment: int, offset: int) -> list[ArchivedEvent]:
        """A frame's events of the aggregates whose index rows point at it (a refused move's
        copy, or one a later segment took over, is passed over)."""
        db = self._open()
        assert db is not None
        rows = db.execute(
            "SELECT aggregate, first_version, last_version FROM aggregates "
            "WHERE segment = ? AND offset = ?",
            (segment, offset),
        ).fetchall()
        ranges: dict[str, list[tuple[int, int]]] = {}
        for aggregate, first, last in rows:
            ranges.setdefault(aggregate, []).append((first, last))
        return [
            e for e in self._frame(segment, offset)
            if any(a <= int(e.fields["ver"]) <= b for a, b in ranges.get(e.fields["agg"], ()))
        ]  # fmt: skip

    def _frame(self, segment: int, offset: int) -> list[ArchivedEvent]:
        cached = self._frames.get((segment, offset))
        if cached is not None:
            self._frames.move_to_end((segment, offset))
            return cached
        db = self._open()
        assert db is not None
        if segment not in self._files:
            row = db.execute("SELECT file FROM segments WHERE id = ?", (segment,)).fetchone()
            self._files[segment] = row[0]
        (length,) = db.execute(
            "SELECT length FROM frames WHERE segment = ? AND offset = ?", (segment, offset)
        ).fetchone()
        path = self.root / "segments" / self._files[segment]
        try:
            with path.open("rb") as source:
                source.seek(offset)
                raw = gzip.decompress(source.read(length))
        except (OSError, EOFError) as e:
            raise InfrastructureError(f"archive segment {path} cannot be read: {e}") from e
        events = []
        for line in raw.splitlines():
            values = orjson.loads(line)
            events.append(ArchivedEvent(int(values["p"]), str(values["pos"]), values["f"]))
        self._frames[(segment, offset)] = events
        if len(self._frames) > CACHED_FRAMES:
            self._frames.popitem(last=False)
        return events


def _by_partition(
    aggregates: Sequence[ArchivedAggregate],
) -> Iterator[tuple[int, list[ArchivedAggregate]]]:
    """Per partition, its aggregates ordered by their first archived position."""
    groups: dict[int, list[ArchivedAggregate]] = {}
    for aggregate in aggregates:
        groups.setdefault(aggregate.partition, []).append(aggregate)
    for partition in sorted(groups):
        yield partition, sorted(groups[partition], key=lambda a: a.events[0].key)


def _frames(
    aggregates: list[ArchivedAggregate],
) -> Iterator[list[tuple[ArchivedAggregate, list[bytes]]]]:
    """Whole aggregates with their lines, a frame's worth at a time."""
    batch: list[tuple[ArchivedAggregate, list[bytes]]] = []
    size = 0
    for aggregate in aggregates:
        lines = [e.line() for e in aggregate.events]
        batch.append((aggregate, lines))
        size += sum(len(line) for line in lines)
        if size >= FRAME_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_root: list[Path] = []
_opened: dict[Path, Archive] = {}


def use_archive_root(root: Path | None) -> None:
    """Where this process's archives live (`<data dir>/archive`; None: nowhere), set once, at
    the edge (the command line's main)."""
    _root[:] = [root] if root is not None else []


def default_archive(prefix: str) -> Archive | None:
    """The archive of install `prefix` under the process's archive root, if one was set (one
    object per folder in a process, so its readers share the frame cache)."""
    if not _root:
        return None
    root = _root[0] / prefix
    return _opened.setdefault(root, Archive(root))
