"""Manifest jobs: each source's text files, cut into chunks of lines, become index records
(source, path, first and last line, sha256 of the chunk's bytes) with counts of what was read.

Skipped, and counted: binary files (a NUL byte, or not UTF-8), files over max_file_bytes,
symbolic links (one could lead out of the checkout) and what is not a regular file. Not looked
into at all: `.git` folders.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from cairn.domain.errors import CairnError
from cairn.domain.jobs.manifest import ManifestSource

SNIFF_BYTES = 8192  # a NUL within these marks a binary file


class SourceUnavailable(CairnError):
    """A source's checkout gave no file or folder to read."""

    code = "source_unavailable"


@dataclass(frozen=True)
class IndexRecord:
    source: str
    path: str  # relative to the source's checkout, with '/'
    start_line: int  # 1-based, inclusive
    end_line: int
    sha256: str


@dataclass(frozen=True)
class IndexCounts:
    sources: int = 0
    files: int = 0
    chunks: int = 0
    bytes: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class ManifestIndex:
    records: list[IndexRecord]
    counts: IndexCounts
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (source, path, why)


def source_label(source: ManifestSource) -> str:
    return source.name or source.uri or source.path or "source"


async def build_index(
    sources: Sequence[ManifestSource],
    *,
    checkout: Callable[[ManifestSource], Awaitable[Path]],
    chunk_lines: int = 200,
    max_file_bytes: int = 1_000_000,
) -> ManifestIndex:
    """Index every source in turn; `checkout` makes a source's files local and says where."""
    if chunk_lines < 1:
        raise ValueError(f"chunk_lines must be at least 1, not {chunk_lines}")
    records: list[IndexRecord] = []
    skipped: list[tuple[str, str, str]] = []
    files = size = 0
    for source in sources:
        label = source_label(source)
        root = await checkout(source)
        if not root.exists():
            raise SourceUnavailable(f"source {label!r} has nothing at {root} after its checkout")
        # Reading files blocks; a thread keeps the worker's loop (leases, cancels) running.
        found = await asyncio.to_thread(_index_source, label, root, chunk_lines, max_file_bytes)
        records += found.records
        skipped += found.skipped
        files, size = files + found.counts.files, size + found.counts.bytes
    counts = IndexCounts(sources=len(sources), files=files, chunks=len(records), bytes=size,
                         skipped=len(skipped))  # fmt: skip
    return ManifestIndex(records, counts, skipped)


def write_index(index: ManifestIndex, path: Path) -> None:
    """The records as JSON lines, written whole or not at all."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        for record in index.records:
            out.write(orjson.dumps(asdict(record)) + b"\n")
    os.replace(partial, path)


def _index_source(label: str, root: Path, chunk_lines: int, max_bytes: int) -> ManifestIndex:
    records: list[IndexRecord] = []
    skipped: list[tuple[str, str, str]] = []
    files = size = 0
    for file in _files(root):
        relative = file.relative_to(root).as_posix() if file != root else file.name
        if file.is_symlink():
            skipped.append((label, relative, "a symbolic link"))
            continue
        if not file.is_file():  # a FIFO would block the read forever
            skipped.append((label, relative, "not a regular file"))
            continue
        if file.stat().st_size > max_bytes:
            skipped.append((label, relative, f"larger than {max_bytes} bytes"))
            continue
        raw = file.read_bytes()
        if b"\0" in raw[:SNIFF_BYTES] or not _is_utf8(raw):
            skipped.append((label, relative, "binary"))
            continue
        files, size = files + 1, size + len(raw)
        lines = raw.splitlines(keepends=True)
        for start in range(0, len(lines), chunk_lines):
            chunk = lines[start : start + chunk_lines]
            digest = hashlib.sha256(b"".join(chunk)).hexdigest()
            records.append(IndexRecord(label, relative, start + 1, start + len(chunk), digest))
    counts = IndexCounts(sources=1, files=files, chunks=len(records), bytes=size,
                         skipped=len(skipped))  # fmt: skip
    return ManifestIndex(records, counts, skipped)


def _files(root: Path) -> Iterator[Path]:
    """Files under `root` in a stable order (or `root` itself when it is a file)."""
    if not root.is_dir() or root.is_symlink():
        yield root
        return
    for folder, dirs, names in os.walk(root):  # links to folders are listed, not followed
        links = [d for d in dirs if (Path(folder) / d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if d != ".git" and d not in links)
        for name in sorted([*names, *links]):
            yield Path(folder) / name


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
