"""The publish stage against a real bare remote and a fake gh: one branch, one commit with the
right author and trailers, the PR's base/head/title/body, and every way publishing says no."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

import pytest

from cairn.domain.jobs.branches import Branches, resolve_branches
from cairn.domain.jobs.publishing import Evidence
from cairn.worker.gitops import Git, askpass_env
from cairn.worker.mirrors import Mirrors
from cairn.worker.publish import Outcome, PublishContext, PublishResult, publish
from tests.worker.conftest import PR_URL, FakeGh, GitCalls, Seeded, run_git

JOB = "job-03-01jd5x2k7qabcdefgh12345678"
ACTOR = "user:ada"
TOKEN = "ghs_" + "Qw7" * 12
PASSED = Evidence(kind="test", command="pytest -q", exit_status=0, step_id="step-1")
BRANCHES = resolve_branches(
    default="main", requested_starting=None, requested_new=None, job_id=JOB, skill=None,
    steps=0, today=datetime.date(2026, 11, 30),
)  # fmt: skip
WORKING = "cairn/20261130/12345678"


@pytest.fixture
async def repo(tmp_path: Path, git: Git, seeded: Seeded) -> Path:
    repo = tmp_path / "work" / "repo"
    await Mirrors(tmp_path / "mirrors", git).checkout(seeded.remote, repo)
    return repo


def context(repo: Path, git: Git, fake_gh: FakeGh, **changes: Any) -> PublishContext:
    ctx = PublishContext(
        git=git, repo=repo, mode="branch", branches=BRANCHES, job_id=JOB, actor=ACTOR,
        commit_message=None, pr_title="Make the answer 42", pr_body="Body text\n\nwith lines",
        pr_base=None, author_name="Cairn Bot", author_email="cairn@example.com",
        changed_paths=["src/app.py"], evidence=[PASSED], skip_reason=None,
        gh_env=fake_gh.env(GH_TOKEN=TOKEN),
    )  # fmt: skip
    return dataclasses.replace(ctx, **changes)


def edit(repo: Path) -> None:
    (repo / "src" / "app.py").write_text("def answer():\n    return 42\n")


def bare_log(seeded: Seeded, revisions: str, fmt: str) -> list[str]:
    out = run_git("--git-dir", str(seeded.bare), "log", f"--format={fmt}", revisions)
    return out.split("\x00")[:-1] if "%x00" in fmt else out.splitlines()


async def test_branch_mode_pushes_one_branch_with_one_commit(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded
) -> None:
    edit(repo)

    result = await publish(context(repo, git, fake_gh))

    assert result.outcome == Outcome.PUBLISHED_BRANCH
    assert (result.branch, result.pr_url) == (WORKING, None)
    assert sorted(seeded.branches()) == sorted(["main", WORKING])
    [commit] = bare_log(seeded, f"main..{WORKING}", "%H|%an <%ae>|%B%x00")
    sha, author, message = commit.strip("\n").split("|", 2)
    assert sha == result.commit
    assert author == "Cairn Bot <cairn@example.com>"
    assert message.startswith("Make the answer 42\n\nMade by Cairn job")
    trailers = run_git("--git-dir", str(seeded.bare), "log", "-1", "--format=%(trailers)", WORKING)
    assert trailers.strip().splitlines() == [f"Cairn-Job: {JOB}", f"Cairn-Actor: {ACTOR}"]
    assert result.detail["gate"]["allowed"] is True
    assert result.detail["gate"]["evidence"] == [PASSED.as_dict()]
    assert fake_gh.calls() == []


async def test_pr_mode_opens_the_pr_with_gh(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded
) -> None:
    edit(repo)

    result = await publish(context(repo, git, fake_gh, mode="pr", commit_message="Answer 42"))

    assert result == PublishResult(
        Outcome.PUBLISHED_PR, WORKING, PR_URL, result.commit, result.detail
    )
    [call] = fake_gh.calls()
    assert call["argv"] == [
        "pr", "create", "--base", "main", "--head", WORKING, "--title", "Make the answer 42",
        "--body", "Body text\n\nwith lines",
    ]  # fmt: skip
    assert call["env"]["GH_TOKEN"] == TOKEN and Path(call["cwd"]) == repo
    assert bare_log(seeded, f"main..{WORKING}", "%s") == ["Answer 42"]


async def test_the_pr_base_is_the_given_one_else_the_starting_branch(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded
) -> None:
    seeded.commit("dev.txt", "dev\n", branch="dev")
    edit(repo)
    from_dev = Branches(default="main", starting="dev", new="fix/x", working="fix/x")

    await publish(context(repo, git, fake_gh, mode="pr", branches=from_dev))
    edit_again = repo / "more.txt"
    edit_again.write_text("x\n")
    given = Branches(default="main", starting="dev", new="fix/y", working="fix/y")
    await publish(context(repo, git, fake_gh, mode="pr", branches=given, pr_base="release"))

    bases = [call["argv"][call["argv"].index("--base") + 1] for call in fake_gh.calls()]
    assert bases == ["dev", "release"]


async def test_a_pr_into_its_own_head_is_refused_before_any_push(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded
) -> None:
    edit(repo)
    on_dev = Branches(default="main", starting="dev", new=None, working="dev")

    result = await publish(context(repo, git, fake_gh, mode="pr", branches=on_dev))

    assert result.outcome == Outcome.FAILED
    assert "would merge 'dev' into itself" in result.detail["reason"]
    assert "newBranch" in result.detail["reason"]
    assert seeded.branches() == ["main"] and fake_gh.calls() == []


async def test_nothing_changed_is_no_changes(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded
) -> None:
    (repo / "debug.log").write_text("ignored by .gitignore\n")

    result = await publish(context(repo, git, fake_gh, mode="pr", changed_paths=[]))

    assert result.outcome == Outcome.NO_CHANGES and result.commit is None
    assert seeded.branches() == ["main"] and fake_gh.calls() == []


async def test_a_commit_the_agent_made_itself_is_published(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded
) -> None:
    start = run_git("rev-parse", "HEAD", cwd=repo).strip()
    edit(repo)
    run_git("-c", "user.name=Agent", "-c", "user.email=a@x", "commit", "-qam", "agent", cwd=repo)

    result = await publish(context(repo, git, fake_gh, start_commit=start))

    assert result.outcome == Outcome.PUBLISHED_BRANCH
    assert bare_log(seeded, f"main..{WORKING}", "%s") == ["agent"]


async def test_publish_mode_none_never_touches_git(
    tmp_path: Path, git: Git, fake_gh: FakeGh, git_calls: GitCalls
) -> None:
    result = await publish(context(tmp_path / "no-such-repo", git, fake_gh, mode="none"))

    assert result == PublishResult(Outcome.PUBLISH_DISABLED, detail={"mode": "none"})
    assert git_calls.lines() == []


async def test_the_gate_refuses_a_source_change_without_evidence(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded
) -> None:
    edit(repo)

    result = await publish(context(repo, git, fake_gh, mode="pr", evidence=[]))

    assert result.outcome == Outcome.FAILED
    assert "no verification ran" in result.detail["reason"]
    assert "verificationSkipReason" in result.detail["reason"]
    assert result.detail["gate"]["allowed"] is False
    assert seeded.branches() == ["main"] and fake_gh.calls() == []


async def test_the_gate_allows_a_source_change_with_a_skip_reason(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded
) -> None:
    edit(repo)
    skip = {"category": "no_tests_exist", "reason": "No tests in this repository"}

    result = await publish(context(repo, git, fake_gh, evidence=[], skip_reason=skip))

    assert result.outcome == Outcome.PUBLISHED_BRANCH
    assert result.detail["gate"]["skip_reason"] == skip
    assert "no_tests_exist" in result.detail["gate"]["reason"]


async def test_a_failed_verification_is_refused(repo: Path, git: Git, fake_gh: FakeGh) -> None:
    edit(repo)
    failed = dataclasses.replace(PASSED, exit_status=1)

    result = await publish(context(repo, git, fake_gh, evidence=[failed]))

    assert result.outcome == Outcome.FAILED
    assert "`pytest -q` exited 1 in step-1" in result.detail["reason"]


async def test_a_rejected_push_is_a_failure_with_the_command_and_stderr(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded
) -> None:
    seeded.commit("theirs.txt", "already there\n", branch=WORKING)
    edit(repo)

    result = await publish(context(repo, git, fake_gh))

    assert result.outcome == Outcome.FAILED
    assert result.detail["command"].endswith(f"origin HEAD:refs/heads/{WORKING}")
    assert "rejected" in result.detail["stderr"] and result.detail["exit_status"] != 0


async def test_a_failing_gh_is_a_failure_with_its_redacted_stderr(
    repo: Path, git: Git, fake_gh: FakeGh
) -> None:
    edit(repo)
    fake_gh.fail_with(1, f"HTTP 401: Bad credentials ({TOKEN})\n")
    redact = lambda s: s.replace(TOKEN, "[redacted]")  # noqa: E731

    result = await publish(context(repo, git, fake_gh, mode="pr", redact=redact))

    assert result.outcome == Outcome.FAILED and result.branch == WORKING
    assert (
        result.detail["reason"]
        == "gh pr create failed (exit 1): HTTP 401: Bad credentials ([redacted])"
    )
    assert TOKEN not in repr(result)
    assert "Body text" not in result.detail["command"]


async def test_origin_pointed_elsewhere_during_the_run_is_refused(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded, tmp_path: Path
) -> None:
    edit(repo)
    run_git("remote", "set-url", "origin", str(tmp_path / "attacker.git"), cwd=repo)

    result = await publish(context(repo, git, fake_gh, remote_url=seeded.remote.url))

    assert result.outcome == Outcome.FAILED
    assert "origin no longer points at the job's repository" in result.detail["reason"]


async def test_the_token_is_in_no_argv_and_no_url(
    tmp_path: Path, git_env: dict[str, str], fake_gh: FakeGh, seeded: Seeded, git_calls: GitCalls
) -> None:
    home = tmp_path / "job-home"
    git = Git(env={**git_env, **askpass_env(home, TOKEN)})
    mirrors = Mirrors(tmp_path / "mirrors", git)
    repo = tmp_path / "work" / "repo"
    await mirrors.checkout(seeded.remote, repo)
    edit(repo)

    result = await publish(context(repo, git, fake_gh, mode="pr"))

    assert result.outcome == Outcome.PUBLISHED_PR
    assert git_calls.count("push") == 1
    assert not any(TOKEN in line for line in git_calls.lines())
    [call] = fake_gh.calls()
    assert not any(TOKEN in arg for arg in call["argv"]) and call["env"]["GH_TOKEN"] == TOKEN
    for config in (repo / ".git" / "config", mirrors.mirror_path(seeded.remote) / "config"):
        assert TOKEN not in config.read_text()
    assert TOKEN not in run_git("remote", "get-url", "--all", "origin", cwd=repo)
    assert TOKEN not in repr(result)


async def test_a_follow_up_on_an_open_pr_pushes_to_it_and_opens_no_second(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded
) -> None:
    url = "https://github.com/octo/repo/pull/7"
    edit(repo)
    result = await publish(context(repo, git, fake_gh, mode="pr", open_pr=url))
    assert (result.outcome, result.pr_url) == (Outcome.PUBLISHED_PR, url)
    assert result.detail["updated"] is True and WORKING in seeded.branches()
    assert fake_gh.calls() == []  # no `gh pr create`


async def test_a_follow_up_that_changed_nothing_says_so_on_the_pr(
    repo: Path, git: Git, fake_gh: FakeGh, seeded: Seeded
) -> None:
    url = "https://github.com/octo/repo/pull/7"
    result = await publish(context(repo, git, fake_gh, mode="pr", open_pr=url))
    assert result.outcome == Outcome.NO_CHANGES and result.detail["commented"] is True
    [call] = fake_gh.calls()
    assert call["argv"][:3] == ["pr", "comment", url]
    assert "changed nothing" in call["argv"][call["argv"].index("--body") + 1]
    assert seeded.branches() == ["main"]  # nothing pushed
