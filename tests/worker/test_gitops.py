"""git as subprocesses against real repositories: snapshots that leave the checkout alone,
diff numbers, commits with a given identity, rejected pushes, the default branch, askpass."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from cairn.worker.gitops import FIXED_ENV, TOKEN_VAR, Git, GitFailed, askpass_env
from tests.worker.conftest import GitCalls, Seeded, make_remote, run_git

TOKEN = "ghs_" + "Zx9" * 12


def clone(seeded: Seeded, where: Path) -> Path:
    run_git("clone", "-q", str(seeded.bare), str(where))
    return where


async def test_a_snapshot_of_a_clean_checkout_is_its_commit_tree(
    seeded: Seeded, git: Git, tmp_path: Path
) -> None:
    repo = clone(seeded, tmp_path / "repo")

    assert await git.snapshot(repo) == run_git("rev-parse", "HEAD^{tree}", cwd=repo).strip()


async def test_snapshot_and_diff_see_edits_and_new_files_but_not_ignored_ones(
    seeded: Seeded, git: Git, tmp_path: Path
) -> None:
    repo = clone(seeded, tmp_path / "repo")
    index_before = (repo / ".git" / "index").read_bytes()
    base = await git.snapshot(repo)
    (repo / "src" / "app.py").write_text("def answer():\n    return 42\n\n\nX = 1\n")
    (repo / "src" / "new.py").write_text("a = 1\nb = 2\n")
    (repo / "README.md").unlink()
    (repo / "debug.log").write_text("ignored\n")
    (repo / "image.bin").write_bytes(b"\0\1\2")

    head = await git.snapshot(repo)
    diff = await git.diff(repo, base, head)

    assert head != base
    assert sorted(diff.paths) == ["README.md", "image.bin", "src/app.py", "src/new.py"]
    assert (diff.files, diff.insertions, diff.deletions) == (4, 4 + 2, 1 + 1)
    assert "+    return 42" in diff.patch and "GIT binary patch" in diff.patch
    assert "debug.log" not in diff.patch
    # The checkout is as it was: same index, nothing staged, no commit, no stray index file.
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert run_git("diff", "--cached", "--name-only", cwd=repo) == ""
    assert run_git("rev-parse", "HEAD", cwd=repo).strip() == seeded.sha()
    assert not list((repo / ".git").glob("cairn-snapshot-*"))


async def test_snapshots_between_steps_give_each_steps_diff(
    seeded: Seeded, git: Git, tmp_path: Path
) -> None:
    repo = clone(seeded, tmp_path / "repo")
    first = await git.snapshot(repo)
    (repo / "a.txt").write_text("one\n")
    second = await git.snapshot(repo)
    (repo / "a.txt").write_text("one\ntwo\n")
    third = await git.snapshot(repo)

    step_two = await git.diff(repo, second, third)

    assert (step_two.paths, step_two.insertions, step_two.deletions) == (["a.txt"], 1, 0)
    assert (await git.diff(repo, first, first)).files == 0


async def test_commit_all_takes_the_identity_it_is_given(
    seeded: Seeded, git: Git, tmp_path: Path
) -> None:
    repo = clone(seeded, tmp_path / "repo")
    assert await git.commit_all(repo, message="m", author_name="A", author_email="a@x") is None

    (repo / "new.py").write_text("x = 1\n")
    message = "Add x\n\n# not a comment: kept\n\nCairn-Job: job-1\n"
    sha = await git.commit_all(repo, message=message, author_name="Cairn", author_email="c@x.org")

    assert sha == run_git("rev-parse", "HEAD", cwd=repo).strip()
    shown = run_git("log", "-1", "--format=%an <%ae>|%cn <%ce>|%B", cwd=repo)
    assert shown.startswith("Cairn <c@x.org>|Cairn <c@x.org>|Add x\n\n# not a comment: kept")
    assert run_git("status", "--porcelain", cwd=repo) == ""


async def test_hooks_written_into_the_checkout_never_run(
    seeded: Seeded, git: Git, tmp_path: Path
) -> None:
    repo = clone(seeded, tmp_path / "repo")
    marker = tmp_path / "hook-ran"
    for hook in ("pre-commit", "commit-msg", "pre-push"):
        path = repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
        path.chmod(0o755)
    (repo / "f.txt").write_text("x\n")

    await git.commit_all(repo, message="m", author_name="A", author_email="a@x")
    await git.push(repo, "with-hooks")

    assert not marker.exists()
    assert "with-hooks" in seeded.branches()


async def test_a_rejected_push_raises_with_the_command_and_stderr(
    seeded: Seeded, git: Git, tmp_path: Path
) -> None:
    repo = clone(seeded, tmp_path / "repo")
    seeded.commit("other.txt", "someone else's\n")
    (repo / "mine.txt").write_text("x\n")
    await git.commit_all(repo, message="m", author_name="A", author_email="a@x")

    with pytest.raises(GitFailed) as caught:
        await git.push(repo, "main")

    assert caught.value.command == "git -c credential.helper= push --no-verify --porcelain " + (
        "origin HEAD:refs/heads/main"
    )
    assert caught.value.exit_status != 0
    assert "rejected" in caught.value.stderr
    assert "failed (exit" in str(caught.value)


async def test_default_branch_from_origin_head_then_the_remote_then_main(
    tmp_path: Path, git: Git
) -> None:
    trunk = make_remote(tmp_path, "octo/trunk", default="trunk")
    repo = clone(trunk, tmp_path / "repo")
    assert await git.default_branch(repo) == "trunk"

    run_git("symbolic-ref", "--delete", "refs/remotes/origin/HEAD", cwd=repo)
    assert await git.default_branch(repo) == "trunk"  # asked the remote

    run_git("remote", "remove", "origin", cwd=repo)
    assert await git.default_branch(repo) == "main"


async def test_askpass_gives_git_the_token_without_argv_or_url(
    tmp_path: Path, git: Git, git_calls: GitCalls, seeded: Seeded
) -> None:
    home = tmp_path / "job-home"
    env = askpass_env(home, TOKEN)
    repo = clone(seeded, tmp_path / "repo")

    # No helper is configured, so git asks GIT_ASKPASS for both the user name and the password.
    asked = await git.run(
        "credential", "fill", cwd=repo, env=env, input=b"protocol=https\nhost=git.example.com\n\n"
    )

    assert f"password={TOKEN}" in asked.stdout and "username=x-access-token" in asked.stdout
    script = Path(env["GIT_ASKPASS"])
    assert script.parent == home and stat.S_IMODE(script.stat().st_mode) == 0o700
    assert TOKEN not in script.read_text()
    assert env[TOKEN_VAR] == TOKEN and env["GIT_TERMINAL_PROMPT"] == "0"
    assert git_calls.lines() and not any(TOKEN in line for line in git_calls.lines())
    assert TOKEN not in (repo / ".git" / "config").read_text()


def test_askpass_without_a_token_only_forbids_prompts(tmp_path: Path) -> None:
    assert askpass_env(tmp_path / "home", None) == {"GIT_TERMINAL_PROMPT": "0"}
    assert not (tmp_path / "home").exists()


async def test_git_sees_only_the_environment_it_is_given(
    tmp_path: Path, git_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_ADMIN_TOKEN", "worker-secret")
    git = Git(env=git_env)
    env = await git.run("-c", "alias.env=!env", "env", cwd=tmp_path)

    assert "worker-secret" not in env.stdout
    for name, value in FIXED_ENV.items():
        assert f"{name}={value}" in env.stdout


async def test_failures_are_redacted(tmp_path: Path, git_env: dict[str, str]) -> None:
    git = Git(env=git_env, redact=lambda s: s.replace("hunter2", "[redacted]"))

    with pytest.raises(GitFailed) as caught:
        await git.run("ls-remote", str(tmp_path / "hunter2" / "missing.git"), cwd=tmp_path)

    assert "hunter2" not in caught.value.command + caught.value.stderr + str(caught.value)
    assert "[redacted]" in caught.value.command
    assert len(caught.value.stderr) <= 4096


async def test_a_git_that_outlives_its_timeout_is_killed(
    tmp_path: Path, git_env: dict[str, str]
) -> None:
    git = Git(env=git_env, timeout_s=0.5)
    marker = tmp_path / "still-running"
    started = time.monotonic()

    with pytest.raises(GitFailed, match=r"timed out after 0\.5 s") as caught:
        await git.run("-c", f"alias.slow=!sleep 3 && touch {marker}", "slow", cwd=tmp_path)

    assert caught.value.exit_status == -1
    assert time.monotonic() - started < 2.5
    time.sleep(3)
    assert not marker.exists(), "the alias's shell outlived git"
