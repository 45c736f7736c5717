"""The PR watcher's pace, with a fake `gh` on PATH: a PR that does not change is looked at
twice as late each time (up to the longest wait), every look shares a budget a minute, and
when GitHub's rate limit runs low the looks wait for its reset. And what `gh`'s JSON says, as an
observation."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from cairn.commands.settings import Settings
from cairn.domain.jobs.pulls import Policy, PullRequest
from cairn.streams.driver import Client
from cairn.worker.pr_watch import PrWatcher, WatchConfig, observation

FAKE_GH = """#!{python}
import json, sys
argv = sys.argv[1:]
with open({calls!r}, "a") as out:
    out.write(json.dumps(argv) + "\\n")
if argv[:2] == ["api", "rate_limit"]:
    print(json.dumps({{"resources": {{"core": {{"remaining": {remaining}, "reset": 0}}}}}}))
elif argv[:2] == ["pr", "view"]:
    print(json.dumps({{"state": "OPEN", "statusCheckRollup": []}}))
else:
    print("[]")
"""


def pr(n: int) -> PullRequest:
    return PullRequest(id=f"pr-00-{n:016d}", version=1, url=f"https://github.com/o/r/pull/{n}",
                       number=n, branch="b", base="main", project="p", task_id=None,
                       policy=Policy(), jobs=["job-a"])  # fmt: skip


def watcher(tmp_path: Path, client: Client, settings: Settings, prs: list[PullRequest], *,
            remaining: int = 5000, **config: float) -> tuple[PrWatcher, Path]:  # fmt: skip
    calls = tmp_path / "calls.jsonl"
    gh = tmp_path / "bin" / "gh"
    gh.parent.mkdir(exist_ok=True)
    gh.write_text(FAKE_GH.format(python=sys.executable, calls=str(calls), remaining=remaining))
    gh.chmod(0o755)

    async def opened() -> list[PullRequest]:
        return prs

    env = {**os.environ, "PATH": f"{gh.parent}{os.pathsep}{os.environ['PATH']}"}
    return PrWatcher(client, settings, WatchConfig(**config), opened, env), calls  # type: ignore[arg-type]


def looks(calls: Path) -> int:
    if not calls.exists():
        return 0
    made = [json.loads(line) for line in calls.read_text().splitlines()]
    return sum(1 for argv in made if argv[:2] == ["pr", "view"])


async def test_an_unchanged_pr_is_looked_at_twice_as_late_each_time(
    tmp_path: Path, client: Client, settings: Settings
) -> None:
    watch, calls = watcher(tmp_path, client, settings, [pr(1)], poll_s=0.2, max_poll_s=0.5)
    assert await watch.round() == 1
    assert await watch.round() == 0  # not due yet
    due = watch.due[pr(1).id]
    assert due.every == 0.4  # nothing changed: twice as late
    time.sleep(0.45)
    assert await watch.round() == 1 and watch.due[pr(1).id].every == 0.5  # at most the longest
    assert looks(calls) == 2


async def test_every_look_shares_the_budget_a_minute(
    tmp_path: Path, client: Client, settings: Settings
) -> None:
    watch, calls = watcher(tmp_path, client, settings, [pr(1), pr(2), pr(3)],
                           budget_per_minute=2, poll_s=0.01)  # fmt: skip
    assert await watch.round() == 2
    time.sleep(0.05)
    assert await watch.round() == 0  # the minute's budget is spent
    assert looks(calls) == 2


async def test_a_low_rate_limit_makes_the_looks_wait_for_its_reset(
    tmp_path: Path, client: Client, settings: Settings
) -> None:
    watch, calls = watcher(tmp_path, client, settings, [pr(1)], remaining=3)
    assert await watch.round() == 0
    assert watch.rate_wait_until - time.monotonic() >= 59  # a minute at least
    assert looks(calls) == 0
    assert await watch.round() == 0  # and it keeps waiting


def test_ghs_json_as_an_observation() -> None:
    view = {"state": "MERGED", "mergeCommit": {"oid": "f00d"}, "mergedAt": "2026-12-07T10:00:00Z",
            "statusCheckRollup": [
                {"__typename": "CheckRun", "name": "tests", "status": "COMPLETED",
                 "conclusion": "FAILURE", "detailsUrl": "https://x/actions/runs/9/job/1"},
                {"__typename": "StatusContext", "context": "ci/legacy", "state": "ERROR"}]}
    reviews = [{"id": 11, "user": {"login": "bob"}, "state": "CHANGES_REQUESTED", "body": "fix",
                "author_association": "OWNER"}]
    lines = [{"id": 1, "pull_request_review_id": 11, "path": "a.py", "line": 3, "body": "here"},
             {"id": 2, "path": "b.py", "line": 4, "body": "loose", "user": {"login": "cy"}}]
    talk = [{"id": 71, "user": {"login": "ann"}, "body": "ok", "author_association": "MEMBER"}]
    seen = observation(view, reviews, lines, talk)
    assert (seen.state, seen.merge_commit) == ("merged", "f00d")
    assert [(c.name, c.conclusion, c.failed) for c in seen.checks or []] == [
        ("tests", "failure", True), ("ci/legacy", "failure", True)]
    [review] = seen.reviews
    assert review.reviewer == "bob" and review.comments[0].path == "a.py"
    assert [(c.comment_id, c.path) for c in seen.comments] == [("71", None), ("line-2", "b.py")]
