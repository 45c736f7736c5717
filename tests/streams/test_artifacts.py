"""The artifact store on a real filesystem: layout, digests, the size cap and its marker,
content types, and paths and links that would lead out of a job's folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cairn.domain.errors import NotFound, ValidationFailed
from cairn.streams.artifacts import (
    FileArtifactStore,
    StoredArtifact,
    artifact_parts,
    content_type_of,
)

JOB = "job-01-0123456789abcdefghijklmnop"
OTHER = "job-01-zyxwvutsrqponmlkjihgfedcba"


@pytest.fixture
def store(tmp_path: Path) -> FileArtifactStore:
    return FileArtifactStore(tmp_path / "artifacts", max_bytes=1024)


def test_files_are_stored_per_job_and_attempt_with_size_and_digest(
    store: FileArtifactStore, tmp_path: Path
) -> None:
    source = tmp_path / "step-1.log"
    source.write_bytes(b"line one\nline two\n")
    stored = store.put_file(JOB, 1, "logs/steps/step-1.log", source)
    assert stored == StoredArtifact(
        name="logs/steps/step-1.log", path="attempt-1/logs/steps/step-1.log", size=18,
        sha256=hashlib.sha256(b"line one\nline two\n").hexdigest(),
        content_type="text/plain; charset=utf-8", truncated=False,
    )  # fmt: skip
    on_disk = store.root / JOB / "attempt-1" / "logs" / "steps" / "step-1.log"
    assert on_disk.read_bytes() == source.read_bytes()
    assert store.open(JOB, stored.path) == on_disk.resolve()
    summary = store.put_bytes(JOB, 2, "run_summary.json", b"{}")
    assert store.list(JOB) == [stored, summary]
    assert store.list(OTHER) == [] and store.list("../etc") == []


def test_a_file_past_the_cap_is_cut_with_a_marker_never_silently(
    store: FileArtifactStore, tmp_path: Path
) -> None:
    source = tmp_path / "big.log"
    source.write_bytes(b"x" * 5000)
    stored = store.put_file(JOB, 1, "big.log", source)
    data = store.open(JOB, stored.path).read_bytes()
    marker = b"\n[cairn: cut at 1024 of 5000 bytes]\n"
    assert data == b"x" * 1024 + marker
    assert stored.truncated and stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert store.list(JOB) == [stored]  # the marker is how a listing knows
    exact = store.put_bytes(JOB, 1, "exact.bin", b"y" * 1024)
    assert not exact.truncated and exact.size == 1024


def test_a_second_put_replaces_the_file(store: FileArtifactStore) -> None:
    store.put_bytes(JOB, 1, "changes.patch", b"old")
    stored = store.put_bytes(JOB, 1, "changes.patch", b"new")
    assert store.open(JOB, stored.path).read_bytes() == b"new"
    assert [a.name for a in store.list(JOB)] == ["changes.patch"]  # no partial file left


@pytest.mark.parametrize(
    ("path", "kind"),
    [("a.log", "text/plain; charset=utf-8"), ("b.TXT", "text/plain; charset=utf-8"),
     ("c.patch", "text/plain; charset=utf-8"), ("d.diff", "text/plain; charset=utf-8"),
     ("e.json", "application/json"), ("f.html", "application/octet-stream"),
     ("noext", "application/octet-stream")],
)  # fmt: skip
def test_content_type_by_extension(path: str, kind: str) -> None:
    assert content_type_of(path) == kind


BAD_PATHS = ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", ".", "..",
             "a\\..\\b", "a\x00b", "a\nb", "x" * 1025, "a/" + "y" * 256]  # fmt: skip


@pytest.mark.parametrize("path", BAD_PATHS)
def test_a_path_that_could_lead_elsewhere_is_refused(
    store: FileArtifactStore, path: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        artifact_parts(path)
    assert refused.value.errors[0]["path"] == "path"
    with pytest.raises(ValidationFailed):
        store.put_bytes(JOB, 1, path, b"x")
    with pytest.raises(ValidationFailed):
        store.open(JOB, "attempt-1/" + path if path else path)
    assert not (store.root.parent / "x").exists()


def test_bad_job_ids_and_attempts_are_refused(store: FileArtifactStore) -> None:
    with pytest.raises(ValidationFailed):
        store.put_bytes("../../tmp", 1, "a.log", b"x")
    with pytest.raises(ValidationFailed):
        store.put_bytes(JOB, 0, "a.log", b"x")
    with pytest.raises(NotFound):
        store.open("..", "attempt-1/a.log")


def test_unknown_jobs_and_paths_are_not_found(store: FileArtifactStore) -> None:
    store.put_bytes(JOB, 1, "logs/a.log", b"x")
    for job, path in [(OTHER, "attempt-1/logs/a.log"), (JOB, "attempt-1/logs/b.log"),
                      (JOB, "attempt-2/logs/a.log"), (JOB, "attempt-1/logs"),
                      (JOB, "logs/a.log"), (JOB, "attempt-1")]:  # fmt: skip
        with pytest.raises(NotFound):
            store.open(job, path)


def test_a_link_out_of_the_jobs_folder_is_never_served_nor_written_through(
    store: FileArtifactStore, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    store.put_bytes(JOB, 1, "ok.log", b"fine")
    store.put_bytes(OTHER, 1, "theirs.log", b"another job's")
    attempt = store.root / JOB / "attempt-1"
    (attempt / "leak.log").symlink_to(secret)
    (attempt / "dir").symlink_to(tmp_path)
    (attempt / "sibling.log").symlink_to(store.root / OTHER / "attempt-1" / "theirs.log")
    (attempt / "inside.log").symlink_to(attempt / "ok.log")
    for path in ["attempt-1/leak.log", "attempt-1/dir/secret.txt", "attempt-1/sibling.log"]:
        with pytest.raises(NotFound):
            store.open(JOB, path)
    assert store.open(JOB, "attempt-1/inside.log").read_bytes() == b"fine"
    with pytest.raises(ValidationFailed):
        store.put_bytes(JOB, 1, "dir/planted/x.log", b"x")
    assert not (tmp_path / "planted").exists()
    assert [a.name for a in store.list(JOB)] == ["ok.log"]  # links are not listed
