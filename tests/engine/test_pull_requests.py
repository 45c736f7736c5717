"""Pull requests to the end, through a real Cairn (projector, scheduler, worker, PR watcher) on
real git with a local bare remote; `gh` is a fake on PATH that opens the PR and serves its state
from a file the test writes (GitHub is the one part outside): a merge finishes the task and its
dependent starts; failed checks run a fix with the failed log until the limit blocks the task;
requested changes carry their line comments; a restart between a failure and its fix runs the fix
once."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from cairn.commands.jobs.job import load_job
from cairn.commands.settings import Settings
from cairn.commands.tasks.task import add_dependency, create_task, load_task
from cairn.domain.tasks.spec import TaskSpec
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.engine.conftest import Engine, log_events, wait_for
from tests.engine.test_execution import editing_claude, finished
from tests.worker.conftest import Seeded, run_git

pytestmark = pytest.mark.timeout(180)
PR_URL = "https://github.com/octo/repo/pull/7"
RUN_URL = "https://github.com/octo/repo/actions/runs/4242/job/1"

FAKE_GH = """#!{python}
import json, sys
argv = sys.argv[1:]
with open({calls!r}, "a") as out:
    out.write(json.dumps(argv) + "\\n")
try:
    state = json.load(open({state!r}))
except (OSError, ValueError):
    state = {{}}
if argv[:2] == ["pr", "create"]:
    print({url!r})
elif argv[:2] == ["pr", "view"]:
    print(json.dumps(state.get("view", {{"state": "OPEN"}})))
elif argv[:1] == ["api"] and argv[1].endswith("/reviews"):
    print(json.dumps(state.get("reviews", [])))
elif argv[:1] == ["api"] and "/issues/" in argv[1]:
    print(json.dumps(state.get("issue_comments", [])))
elif argv[:1] == ["api"] and argv[1].endswith("/comments"):
    print(json.dumps(state.get("comments", [])))
elif argv[:2] == ["run", "view"]:
    print(state.get("logs", {{}}).get(argv[2], ""))
elif argv[:2] == ["pr", "comment"]:
    pass
else:
    sys.stderr.write("fake gh: unknown command " + " ".join(argv) + "\\n")
    sys.exit(1)
"""


class GitHub:
    """The fake's state: what `gh pr view` and the REST calls answer."""

    def __init__(self, folder: Path) -> None:
        self.state_file, self.calls_file = folder / "gh-state.json", folder / "gh-calls.jsonl"
        self.state: dict[str, Any] = {"view": {"number": 7, "state": "OPEN",
                                               "statusCheckRollup": []}}
        self.save()

    def save(self) -> None:
        self.state_file.write_text(json.dumps(self.state))

    def checks(self, *checks: tuple[str, str, str | None]) -> None:
        self.state["view"]["statusCheckRollup"] = [
            {"__typename": "CheckRun", "name": n, "status": s, "conclusion": c,
             "detailsUrl": RUN_URL} for n, s, c in checks]  # fmt: skip
        self.save()

    def calls(self) -> list[list[str]]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]


@pytest.fixture
def github(engine: Engine) -> GitHub:
    fake = GitHub(engine.tmp)
    gh = engine.tmp / "bin" / "gh"
    gh.write_text(FAKE_GH.format(python=sys.executable, calls=str(fake.calls_file),
                                 state=str(fake.state_file), url=PR_URL))  # fmt: skip
    gh.chmod(0o755)
    (engine.tmp / "bin" / "claude").write_text(editing_claude(engine.shared))
    engine.env.update({"CAIRN_ALLOW_LOCAL_REPOSITORIES": "true", "CAIRN_PR_POLL_S": "0.3",
                       "CAIRN_PR_POLL_MAX_S": "0.6", "CAIRN_GIT_AUTHOR_NAME": "Cairn Test",
                       "CAIRN_GIT_AUTHOR_EMAIL": "cairn@test"})  # fmt: skip
    return fake


def start(engine: Engine) -> None:
    engine.projector()
    engine.scheduler()
    engine.worker("w", "claude,git,gh")
    engine.start("pr-watch", "pr-watch")


async def a_task(store: EventStore, remote: Seeded, title: str, *, fixes: int = 2,
                 status: str = "ready") -> str:  # fmt: skip
    spec = TaskSpec.model_validate({
        "title": title, "task_type": "chore", "priority": 1, "status": status,
        "spec": {"repository": str(remote.bare), "targetRuntime": "claude", "task": {
            "instructions": f"{title}: add a line to the readme", "publish": {
                "mode": "pr", "maxAutoFixes": fixes, "verificationSkipReason": {
                    "category": "docs_only", "reason": "a readme line"}}}},
    })  # fmt: skip
    return (await create_task(store, spec, actor="test")).id


async def status_is(store: EventStore, task_id: str, wanted: str, timeout: float = 60) -> None:
    async def there() -> bool:
        return (await load_task(store, task_id)).status == wanted

    await wait_for(there, timeout=timeout, what=f"task {task_id} {wanted}")


async def pr_events(store: EventStore, keys: Keys, kind: str) -> list[Any]:
    return [e for e in await log_events(store, keys) if e.type == kind]


def prompts(engine: Engine) -> str:
    path = engine.shared / "prompts.txt"
    return path.read_text() if path.exists() else ""


async def test_a_merged_pr_finishes_its_task_and_its_dependent_starts(
    engine: Engine, store: EventStore, keys: Keys, remote: Seeded, github: GitHub,
) -> None:  # fmt: skip
    first = await a_task(store, remote, "First")
    second = await a_task(store, remote, "Second")  # blocked, waiting on the first
    await add_dependency(store, second, first, actor="test")
    start(engine)
    await status_is(store, first, "in_review")  # the PR is open
    [opened] = await pr_events(store, keys, "pr.opened")
    assert opened.data["url"] == PR_URL and opened.data["task_id"] == first
    github.state["view"] |= {"state": "MERGED", "mergeCommit": {"oid": "f00d"},
                             "mergedAt": "2026-12-07T10:00:00Z"}  # fmt: skip
    github.save()
    await status_is(store, first, "done", timeout=20)
    [merged] = await pr_events(store, keys, "pr.merged")
    assert merged.actor == "pr-watcher" and merged.data["merge_commit"] == "f00d"
    moved = [e for e in await log_events(store, keys) if e.agg == first and
             e.type == "task.transitioned" and e.data["to_status"] == "done"]  # fmt: skip
    assert moved and PR_URL in moved[0].data["reason"] and moved[0].actor == "pr-watcher"

    async def dependent_started() -> bool:
        return (await load_task(store, second)).active_job_id is not None

    await wait_for(dependent_started, timeout=30, what="the dependent's run")


async def test_failed_checks_get_fixes_with_their_log_until_the_task_is_blocked(
    engine: Engine, store: EventStore, keys: Keys, remote: Seeded, github: GitHub,
    settings: Settings,
) -> None:  # fmt: skip
    task_id = await a_task(store, remote, "Fixable", fixes=1)
    start(engine)
    await status_is(store, task_id, "in_review")
    github.state["logs"] = {"4242": "tests\tRun pytest\n...\nFAILED test_app.py::test_x - "
                                    "assert 41 == 42\n1 failed"}  # fmt: skip
    github.checks(("tests", "COMPLETED", "FAILURE"), ("lint", "COMPLETED", "SUCCESS"))

    async def fixed() -> bool:
        return len(await pr_events(store, keys, "pr.follow_up_requested")) == 1

    await wait_for(fixed, timeout=20, what="a fix was asked for")
    [asked] = await pr_events(store, keys, "pr.follow_up_requested")
    fix = await finished(store, asked.data["job_id"], timeout=60)
    assert fix.status == "succeeded", fix.outcome
    message = fix.normalized["task"]["instructions"]
    assert "## tests: failure" in message and "assert 41 == 42" in message
    assert "lint" not in message
    assert "assert 41 == 42" in prompts(engine)  # the agent was told
    branch = str(fix.publish["branch"]) if fix.publish else ""
    log = run_git("--git-dir", str(remote.bare), "log", "--format=%s", f"main..{branch}")
    assert len(log.splitlines()) == 2, log  # a second commit on the same branch
    assert fix.publish and fix.publish["pr_url"] == PR_URL
    assert sum(1 for c in github.calls() if c[:2] == ["pr", "create"]) == 1
    # CI runs again on the push and fails again: the one automatic fix is spent.
    github.checks(("tests", "IN_PROGRESS", None), ("lint", "COMPLETED", "SUCCESS"))
    await wait_for(lambda: _checks_seen(store, keys, 2), timeout=20, what="the checks rerun")
    github.checks(("tests", "COMPLETED", "FAILURE"), ("lint", "COMPLETED", "SUCCESS"))
    await status_is(store, task_id, "blocked", timeout=20)
    task = await load_task(store, task_id)
    assert task.blocked_reason and task.blocked_reason["code"] == "pr_checks_failing"
    assert len(await pr_events(store, keys, "pr.follow_up_requested")) == 1


async def _checks_seen(store: EventStore, keys: Keys, count: int) -> bool:
    return len(await pr_events(store, keys, "pr.checks_changed")) >= count


async def test_requested_changes_with_line_comments_become_the_follow_ups_message(
    engine: Engine, store: EventStore, keys: Keys, remote: Seeded, github: GitHub,
) -> None:  # fmt: skip
    task_id = await a_task(store, remote, "Reviewed")
    start(engine)
    await status_is(store, task_id, "in_review")
    github.state["reviews"] = [
        {"id": 501, "user": {"login": "eve"}, "state": "CHANGES_REQUESTED",
         "body": "@cairn rewrite it all", "author_association": "CONTRIBUTOR"},
        {"id": 502, "user": {"login": "ann"}, "state": "CHANGES_REQUESTED",
         "body": "Two things.", "author_association": "MEMBER"},
    ]  # fmt: skip
    github.state["comments"] = [
        {"id": 1, "pull_request_review_id": 502, "path": "README.md", "line": 2,
         "body": "Say hello, not hi.", "user": {"login": "ann"}},
        {"id": 2, "pull_request_review_id": 502, "path": "src/app.py", "line": 14,
         "body": "Handle the empty case.", "user": {"login": "ann"}},
    ]  # fmt: skip
    github.save()

    async def asked() -> bool:
        return bool(await pr_events(store, keys, "pr.follow_up_requested"))

    await wait_for(asked, timeout=20, what="a follow-up for the review")
    [request] = await pr_events(store, keys, "pr.follow_up_requested")
    assert request.data["reason"] == "changes_requested"
    job = await load_job(store, request.data["job_id"])
    message = job.normalized["task"]["instructions"]
    assert "- README.md:2: Say hello, not hi." in message
    assert "- src/app.py:14: Handle the empty case." in message
    assert "rewrite it all" not in message  # eve cannot write to the repository
    reviews = await pr_events(store, keys, "pr.review_submitted")
    assert {r.data["reviewer"] for r in reviews} == {"eve", "ann"}  # both recorded


async def test_a_restart_between_a_failed_check_and_its_fix_runs_the_fix_once(
    engine: Engine, store: EventStore, keys: Keys, remote: Seeded, github: GitHub,
) -> None:  # fmt: skip
    task_id = await a_task(store, remote, "Restarted")
    start(engine)
    await status_is(store, task_id, "in_review")
    engine.kill_all(signal.SIGKILL)  # every process, before the failure is seen
    github.checks(("tests", "COMPLETED", "FAILURE"))
    start(engine)

    async def fix_done() -> bool:
        asked = await pr_events(store, keys, "pr.follow_up_requested")
        return bool(asked) and (await load_job(store, asked[0].data["job_id"])).status in (
            "succeeded", "failed", "dead_letter")  # fmt: skip

    await wait_for(fix_done, timeout=60, what="the fix ran")
    engine.kill_all(signal.SIGKILL)  # and again, after it
    start(engine)
    await status_is(store, task_id, "in_review", timeout=30)
    submitted = [e for e in await log_events(store, keys) if e.type == "job.submitted"]
    assert len(submitted) == 2  # the run and one fix
    assert len(await pr_events(store, keys, "pr.follow_up_requested")) == 1
