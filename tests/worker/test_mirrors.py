"""The mirror cache: a repository is downloaded once per host, fetched before each job under a
lock that concurrent jobs share, and each job gets its own cheap checkout."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
from pathlib import Path

import pytest

from cairn.domain.jobs.repositories import Remote
from cairn.worker.gitops import Git, GitFailed
from cairn.worker.mirrors import Mirrors
from tests.worker.conftest import GitCalls, Seeded, make_remote, run_git


def objects(repo: Path) -> list[Path]:
    found = (repo / ".git" / "objects").rglob("*")
    return [p for p in found if p.is_file() and p.parent.name not in ("info",)]


async def test_a_first_checkout_clones_the_mirror_and_checks_out_the_default_branch(
    tmp_path: Path, git: Git, seeded: Seeded
) -> None:
    mirrors = Mirrors(tmp_path / "mirrors", git)
    repo = tmp_path / "job" / "repo"
    repo.mkdir(parents=True)

    checkout = await mirrors.checkout(seeded.remote, repo)

    assert (checkout.default_branch, checkout.head, checkout.fetched) == (
        "main",
        seeded.sha(),
        False,
    )
    assert checkout.seconds > 0
    assert (repo / "src" / "app.py").read_text() == "def answer():\n    return 41\n"
    assert run_git("remote", "get-url", "origin", cwd=repo).strip() == seeded.remote.url
    assert run_git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo).strip() == "main"
    assert run_git("status", "--porcelain", cwd=repo) == ""
    mirror = mirrors.mirror_path(seeded.remote)
    assert mirror.parent == tmp_path / "mirrors" and mirror.name.endswith(".git")
    assert run_git("--git-dir", str(mirror), "config", "remote.origin.mirror").strip() == "true"
    # Objects are hard links to the mirror's, not copies.
    assert objects(repo) and all(p.stat().st_nlink > 1 for p in objects(repo))


async def test_the_second_checkout_reuses_the_mirror_and_fetches_only(
    tmp_path: Path, git: Git, seeded: Seeded, git_calls: GitCalls
) -> None:
    mirrors = Mirrors(tmp_path / "mirrors", git)
    await mirrors.checkout(seeded.remote, tmp_path / "one")
    mirror = mirrors.mirror_path(seeded.remote)
    inode = mirror.stat().st_ino
    newer = seeded.commit("src/app.py", "def answer():\n    return 42\n")

    second = await mirrors.checkout(seeded.remote, tmp_path / "two")

    assert second.fetched and second.head == newer
    assert mirror.stat().st_ino == inode
    assert git_calls.count("clone --mirror") == 1
    assert git_calls.count("fetch --prune") == 1
    assert (tmp_path / "two" / "src" / "app.py").read_text().endswith("return 42\n")
    assert (tmp_path / "one" / "src" / "app.py").read_text().endswith("return 41\n")


async def test_a_checkout_of_another_branch(tmp_path: Path, git: Git, seeded: Seeded) -> None:
    dev = seeded.commit("dev.txt", "on dev\n", branch="dev")
    mirrors = Mirrors(tmp_path / "mirrors", git)

    checkout = await mirrors.checkout(seeded.remote, tmp_path / "repo", branch="dev")

    assert (checkout.head, checkout.default_branch) == (dev, "main")
    assert (tmp_path / "repo" / "dev.txt").exists()
    assert run_git("rev-parse", "--abbrev-ref", "HEAD", cwd=tmp_path / "repo").strip() == "dev"


async def test_a_missing_branch_names_the_branch_and_the_repository(
    tmp_path: Path, git: Git, seeded: Seeded
) -> None:
    mirrors = Mirrors(tmp_path / "mirrors", git)

    with pytest.raises(GitFailed, match="branch 'nope' does not exist in octo/repo"):
        await mirrors.checkout(seeded.remote, tmp_path / "repo", branch="nope")


async def test_a_missing_remote_names_the_repository(tmp_path: Path, git: Git) -> None:
    missing = Remote(url=str(tmp_path / "nowhere.git"), display="octo/missing", local=True)
    mirrors = Mirrors(tmp_path / "mirrors", git)

    with pytest.raises(GitFailed, match="could not clone octo/missing: fatal: ") as caught:
        await mirrors.checkout(missing, tmp_path / "repo")

    assert caught.value.exit_status != 0 and caught.value.stderr
    assert list((tmp_path / "mirrors").glob("*.git")) == []  # no half mirror left behind


async def test_a_failed_fetch_names_the_repository(
    tmp_path: Path, git: Git, seeded: Seeded
) -> None:
    mirrors = Mirrors(tmp_path / "mirrors", git)
    await mirrors.checkout(seeded.remote, tmp_path / "one")
    seeded.bare.rename(seeded.bare.with_name("moved.git"))

    with pytest.raises(GitFailed, match="could not fetch octo/repo: "):
        await mirrors.checkout(seeded.remote, tmp_path / "two")


async def test_two_concurrent_checkouts_of_one_remote_share_one_mirror(
    tmp_path: Path, git: Git, seeded: Seeded, git_calls: GitCalls
) -> None:
    mirrors = Mirrors(tmp_path / "mirrors", git)
    other = Mirrors(tmp_path / "mirrors", git)  # as another worker process on the host would

    one, two = await asyncio.gather(
        mirrors.checkout(seeded.remote, tmp_path / "one"),
        other.checkout(seeded.remote, tmp_path / "two"),
    )

    assert one.head == two.head == seeded.sha()
    assert sorted([one.fetched, two.fetched]) == [False, True]
    assert git_calls.count("clone --mirror") == 1


async def test_a_checkout_waits_for_the_mirror_lock_without_blocking_the_loop(
    tmp_path: Path, git: Git, seeded: Seeded
) -> None:
    mirrors = Mirrors(tmp_path / "mirrors", git)
    mirrors.root.mkdir()
    lock = mirrors.mirror_path(seeded.remote).with_suffix(".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held as another process would hold it
    try:
        task = asyncio.create_task(mirrors.checkout(seeded.remote, tmp_path / "repo"))
        await asyncio.sleep(0.5)  # the loop runs: this sleep returns on time
        assert not task.done()
        assert not mirrors.mirror_path(seeded.remote).exists()
    finally:
        os.close(fd)
    checkout = await asyncio.wait_for(task, 30)
    assert checkout.head == seeded.sha()


async def test_each_remote_has_its_own_mirror(tmp_path: Path, git: Git, seeded: Seeded) -> None:
    other = make_remote(tmp_path, "octo/other")
    mirrors = Mirrors(tmp_path / "mirrors", git)

    await mirrors.checkout(seeded.remote, tmp_path / "one")
    await mirrors.checkout(other.remote, tmp_path / "two")

    assert mirrors.mirror_path(seeded.remote) != mirrors.mirror_path(other.remote)
    assert len(list((tmp_path / "mirrors").glob("*.git"))) == 2


async def test_a_relative_mirror_root_still_works(
    seeded: Seeded, git: Git, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `cairn up` runs with CAIRN_DATA_DIR=.cairn by default: git must not see a relative path.
    monkeypatch.chdir(tmp_path)
    repo = tmp_path / "checkout"
    checkout = await Mirrors(Path("data") / "mirrors", git).checkout(seeded.remote, repo)
    assert checkout.head == seeded.sha() and (tmp_path / "data" / "mirrors").is_dir()


async def test_a_mirror_held_by_a_stuck_process_does_not_stop_the_checkout(
    seeded: Seeded, git: Git, tmp_path: Path
) -> None:
    # A worker stopped (SIGSTOP) while it fetched holds the mirror's lock: another job clones
    # on its own after the wait instead of hanging.
    mirrors = Mirrors(tmp_path / "mirrors", git, lock_wait_s=0.5)
    await mirrors.checkout(seeded.remote, tmp_path / "first")
    lock = tmp_path / "mirrors" / f"{mirrors.mirror_path(seeded.remote).stem}.lock"
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        f"import fcntl, os, time; fd = os.open({str(lock)!r}, os.O_RDWR); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and await holder.stdout.readline() == b"held\n"
        checkout = await mirrors.checkout(seeded.remote, tmp_path / "second")
        assert checkout.head == seeded.sha() and not checkout.fetched
        assert run_git("remote", "get-url", "origin", cwd=tmp_path / "second").strip() == str(
            seeded.bare
        )
    finally:
        holder.kill()
        await holder.wait()
