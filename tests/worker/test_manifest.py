"""Manifest jobs: a local folder source and a single file indexed into chunk records and
counts; binaries, large files, links and .git left out; the index as JSON lines."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson
import pytest

from cairn.domain.jobs.manifest import ManifestSource
from cairn.worker.manifest import (
    IndexCounts,
    IndexRecord,
    SourceUnavailable,
    build_index,
    write_index,
)


async def local(source: ManifestSource) -> Path:
    assert source.path is not None
    return Path(source.path)


def sha(lines: list[str]) -> str:
    return hashlib.sha256("".join(lines).encode()).hexdigest()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs-repo"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "config").write_text("[core]\n")
    (root / "src" / "pkg" / "big.py").write_text("".join(f"x = {i}\n" for i in range(450)))
    (root / "README.md").write_text("# Docs\r\nSee café.\r\n")
    (root / "empty.txt").write_text("")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (root / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (root / "huge.log").write_text("y" * 10_000)
    (root / "link.md").symlink_to(root / "README.md")
    (root / "outside").symlink_to(tmp_path)
    os.mkfifo(root / "pipe")
    return root


async def test_a_folder_and_a_file_are_indexed_in_chunks(folder: Path, tmp_path: Path) -> None:
    single = tmp_path / "notes.txt"
    single.write_text("one\ntwo\nthree")
    sources = [ManifestSource(name="docs", path=str(folder)), ManifestSource(path=str(single))]
    index = await build_index(sources, checkout=local, chunk_lines=200, max_file_bytes=5_000)

    big = [f"x = {i}\n" for i in range(450)]
    assert index.records == [
        IndexRecord("docs", "README.md", 1, 2, sha(["# Docs\r\n", "See café.\r\n"])),
        IndexRecord("docs", "src/pkg/big.py", 1, 200, sha(big[:200])),
        IndexRecord("docs", "src/pkg/big.py", 201, 400, sha(big[200:400])),
        IndexRecord("docs", "src/pkg/big.py", 401, 450, sha(big[400:])),
        IndexRecord(str(single), "notes.txt", 1, 3, sha(["one\n", "two\n", "three"])),
    ]
    readme, code, notes = (folder / "README.md", folder / "src/pkg/big.py", single)
    size = sum(path.stat().st_size for path in (readme, code, notes))
    assert index.counts == IndexCounts(sources=2, files=4, chunks=5, bytes=size, skipped=6)
    assert sorted((path, why) for _, path, why in index.skipped) == [
        ("huge.log", "larger than 5000 bytes"), ("latin1.txt", "binary"),
        ("link.md", "a symbolic link"), ("logo.png", "binary"), ("outside", "a symbolic link"),
        ("pipe", "not a regular file"),
    ]  # fmt: skip


async def test_the_index_is_written_as_json_lines(folder: Path, tmp_path: Path) -> None:
    index = await build_index([ManifestSource(name="docs", path=str(folder))], checkout=local,
                              chunk_lines=300)  # fmt: skip
    out = tmp_path / "index.jsonl"
    write_index(index, out)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(lines) == len(index.records) == 4  # README, huge.log, big.py twice; empty: none
    assert [line for line in lines if line["path"] == "src/pkg/big.py"] == [
        {"source": "docs", "path": "src/pkg/big.py", "start_line": 1, "end_line": 300,
         "sha256": index.records[2].sha256},
        {"source": "docs", "path": "src/pkg/big.py", "start_line": 301, "end_line": 450,
         "sha256": index.records[3].sha256},
    ]  # fmt: skip
    assert not (tmp_path / "index.jsonl.partial").exists()


async def test_a_source_without_a_checkout_is_named(tmp_path: Path) -> None:
    source = ManifestSource(name="wiki", path=str(tmp_path / "absent"))
    with pytest.raises(SourceUnavailable, match="source 'wiki' has nothing at"):
        await build_index([source], checkout=local)


async def test_chunks_need_at_least_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_lines must be at least 1"):
        await build_index([], checkout=local, chunk_lines=0)
