"""The files a job's attempts produce (logs, patches, summaries): an interface, and its
implementation on a filesystem, `<root>/<job id>/attempt-<n>/<path>`.

A file past `max_bytes` is cut there and ends with a marker line saying so, never lost
silently. Paths are relative and plain (no `..`, no absolute, no NUL or backslash), and a
file is served only from inside its job's folder, whatever symlinks lead elsewhere.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from cairn.domain.errors import NotFound, ValidationFailed

TEXT = "text/plain; charset=utf-8"
CONTENT_TYPES = {".log": TEXT, ".txt": TEXT, ".patch": TEXT, ".diff": TEXT, ".md": TEXT,
                 ".json": "application/json"}  # fmt: skip
BINARY = "application/octet-stream"
MARKER = "\n[cairn: cut at {kept} of {size} bytes]\n"
_MARKER_END = re.compile(rb"\n\[cairn: cut at [0-9]+ of [0-9]+ bytes\]\n\Z")
_JOB_ID = re.compile(r"[a-z]+-[0-9]{2,4}-[0-9a-z]{16,40}")  # the shape Keys.new_id makes
_ATTEMPT = re.compile(r"attempt-[0-9]{1,6}")
_PART_SUFFIX = ".cairn-part"  # a file still being written; never listed
MAX_PATH = 1_024
CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredArtifact:
    """A stored file: `name` as the worker gave it, `path` where it is served from
    (`attempt-<n>/<name>`), and the size and sha256 of the bytes stored."""

    name: str
    path: str
    size: int
    sha256: str
    content_type: str
    truncated: bool


class ArtifactStore(Protocol):
    """Where a worker puts an attempt's files and the API finds them again."""

    def put_file(self, job_id: str, attempt: int, path: str, source: Path) -> StoredArtifact: ...

    def put_bytes(self, job_id: str, attempt: int, path: str, data: bytes) -> StoredArtifact: ...

    def list(self, job_id: str) -> builtins.list[StoredArtifact]: ...

    def open(self, job_id: str, path: str) -> Path: ...


def content_type_of(path: str) -> str:
    """The content type a file is served with, by its extension."""
    return CONTENT_TYPES.get(Path(path).suffix.lower(), BINARY)


def artifact_parts(path: str) -> tuple[str, ...]:
    """The parts of a plain relative path; ValidationFailed (path `path`) for anything that
    could lead elsewhere: absolute, `..`, `.`, empty parts, NUL, backslashes, control
    characters."""
    reason = None
    if not 1 <= len(path) <= MAX_PATH:
        reason = f"must be 1 to {MAX_PATH} characters"
    elif any(ord(c) < 32 or ord(c) == 127 for c in path) or "\\" in path:
        reason = "must not hold control characters, NUL or backslashes"
    elif path.startswith("/"):
        reason = "must be relative, not absolute"
    elif any(part in ("", ".", "..") or len(part) > 255 for part in path.split("/")):
        reason = "must not hold '..', '.' or empty parts (each part at most 255 characters)"
    if reason is not None:
        raise ValidationFailed(f"the artifact path {reason}", [{"path": "path", "reason": reason}])
    return tuple(path.split("/"))


class FileArtifactStore:
    """Artifacts as files under `root`, each cut at `max_bytes` (with a marker)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def put_file(self, job_id: str, attempt: int, path: str, source: Path) -> StoredArtifact:
        """Store a copy of `source` as the attempt's `path` (cut past `max_bytes`)."""
        with source.open("rb") as reader:
            return self._write(job_id, attempt, path, reader, os.fstat(reader.fileno()).st_size)

    def put_bytes(self, job_id: str, attempt: int, path: str, data: bytes) -> StoredArtifact:
        """Store `data` as the attempt's `path` (cut past `max_bytes`)."""
        return self._write(job_id, attempt, path, io.BytesIO(data), len(data))

    def list(self, job_id: str) -> builtins.list[StoredArtifact]:
        """Every stored file of the job, by attempt then path (symlinks left out)."""
        if not _JOB_ID.fullmatch(job_id):
            return []
        folder = self.root / job_id
        if not folder.is_dir():
            return []
        found = []
        attempts = [a for a in folder.iterdir() if a.is_dir() and _ATTEMPT.fullmatch(a.name)]
        for attempt in sorted(attempts, key=lambda a: int(a.name.split("-")[1])):
            for file in sorted(attempt.rglob("*")):
                if file.is_symlink() or not file.is_file() or file.name.endswith(_PART_SUFFIX):
                    continue
                found.append(_described(file, attempt, folder))
        return found

    def open(self, job_id: str, path: str) -> Path:
        """The file to serve for the job's `path` (`attempt-<n>/...`), resolved; NotFound for
        an unknown job or path, or a link that leads out of the job's folder."""
        parts = artifact_parts(path)
        if not _JOB_ID.fullmatch(job_id):
            raise NotFound("that is not a job id; no artifacts are stored for it")
        folder = self.root / job_id
        missing = NotFound(f"job {job_id} has no artifact at that path", job_id=job_id)
        if not _ATTEMPT.fullmatch(parts[0]) or len(parts) < 2:
            raise missing
        try:
            resolved = folder.joinpath(*parts).resolve(strict=True)
            inside = resolved.is_relative_to(folder.resolve(strict=True))
        except (OSError, RuntimeError):  # missing, a loop of links, unreadable
            raise missing from None
        if not inside or not resolved.is_file():
            raise missing
        return resolved

    def _write(
        self, job_id: str, attempt: int, path: str, reader: BinaryIO, size: int
    ) -> StoredArtifact:
        parts = artifact_parts(path)
        if attempt < 1:
            reason = "must be 1 or more"
            raise ValidationFailed(f"attempt {reason}", [{"path": "attempt", "reason": reason}])
        if not _JOB_ID.fullmatch(job_id):
            reason = "not a job id"
            raise ValidationFailed(f"job_id is {reason}", [{"path": "job_id", "reason": reason}])
        folder = self.root / job_id
        target = folder.joinpath(f"attempt-{attempt}", *parts)
        # A link planted on the way must not carry the write out of the job's folder: checked
        # before any folder is made, and again once they are.
        for _ in range(2):
            if not target.parent.resolve().is_relative_to(folder.resolve()):
                reason = "leads out of the job's folder"
                errors = [{"path": "path", "reason": reason}]
                raise ValidationFailed(f"the artifact path {reason}", errors)
            target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        kept = 0
        partial = target.with_name(f".{uuid.uuid4().hex}{_PART_SUFFIX}")
        with partial.open("xb") as out:
            while kept < self.max_bytes:
                block = reader.read(min(CHUNK, self.max_bytes - kept))
                if not block:
                    break
                out.write(block)
                digest.update(block)
                kept += len(block)
            truncated = bool(reader.read(1))
            whole = max(size, kept + 1)  # the source may have grown since it was measured
            marker = MARKER.format(kept=kept, size=whole).encode() if truncated else b""
            out.write(marker)
            digest.update(marker)
        os.replace(partial, target)  # readers see the whole file or none; a link is replaced
        return StoredArtifact(
            name=path, path=f"attempt-{attempt}/{path}", size=kept + len(marker),
            sha256=digest.hexdigest(), content_type=content_type_of(path), truncated=truncated,
        )  # fmt: skip


def _described(file: Path, attempt: Path, folder: Path) -> StoredArtifact:
    digest = hashlib.sha256()
    with file.open("rb") as reader:
        while block := reader.read(CHUNK):
            digest.update(block)
        size = reader.tell()
        reader.seek(max(0, size - 80))
        truncated = bool(_MARKER_END.search(reader.read()))
    name = file.relative_to(attempt).as_posix()
    return StoredArtifact(
        name=name, path=file.relative_to(folder).as_posix(), size=size,
        sha256=digest.hexdigest(), content_type=content_type_of(name), truncated=truncated,
    )  # fmt: skip
