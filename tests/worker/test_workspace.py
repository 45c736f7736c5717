"""A job attempt's workspace: its folders, private to the worker, fresh for every attempt."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cairn.worker.workspace import make_workspace, remove_workspace

JOB = "job-03-01jd5x2k7qabcdefgh12345678"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_folders_of_an_attempt(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, JOB, 2)

    assert workspace.root == tmp_path / "work" / JOB / "attempt-2"
    folders = [workspace.repo, workspace.home, workspace.skills_active, workspace.artifacts]
    assert [p.name for p in folders] == ["repo", "home", "skills_active", "artifacts"]
    for folder in [workspace.root, *folders]:
        assert folder.is_dir() and mode(folder) == 0o700, folder
        assert not any(folder.iterdir()) or folder == workspace.root


def test_a_leftover_of_the_same_attempt_is_removed_first(tmp_path: Path) -> None:
    first = make_workspace(tmp_path, JOB, 1)
    (first.repo / "stale.txt").write_text("from a crashed attempt")
    locked = first.home / "locked"
    locked.mkdir()
    (locked / "file").write_text("x")
    locked.chmod(0o500)  # a tool left a read-only folder behind
    (first.skills_active / "outside").symlink_to(tmp_path / "keep", target_is_directory=True)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious").write_text("not the workspace's")

    again = make_workspace(tmp_path, JOB, 1)

    assert again == first
    assert not any(again.repo.iterdir()) and not any(again.home.iterdir())
    assert (tmp_path / "keep" / "precious").read_text() == "not the workspace's"


def test_other_attempts_are_left_alone_and_the_last_takes_the_job_folder(tmp_path: Path) -> None:
    one = make_workspace(tmp_path, JOB, 1)
    two = make_workspace(tmp_path, JOB, 2)
    (one.repo / "f").write_text("x")

    remove_workspace(two)
    assert not two.root.exists() and (one.repo / "f").exists()

    remove_workspace(one)
    assert not (tmp_path / "work" / JOB).exists()
    assert (tmp_path / "work").is_dir()


def test_remove_twice_is_harmless(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, JOB, 1)
    remove_workspace(workspace)
    remove_workspace(workspace)
    assert not workspace.root.exists()


@pytest.mark.parametrize(("job_id", "attempt"), [("", 1), ("..", 1), ("a/b", 1), (JOB, 0)])
def test_bad_ids_and_attempts_are_refused(tmp_path: Path, job_id: str, attempt: int) -> None:
    with pytest.raises(ValueError):
        make_workspace(tmp_path, job_id, attempt)
    assert not (tmp_path / "work" / "b").exists()
