"""The run page: the agent's conversation (the transcript, step by step, with no raw JSON on
screen) and the follow-ups; live output (SSE, and polling when the stream is refused) folded
away as raw output, follow, filter and copy; the stage and step timeline; artifacts and the
patch; controls (cancel, pause and resume, operator messages, resubmit); a failure before
execution shown as plainly as one during it; live updates paused while the tab is hidden."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from playwright.sync_api import BrowserContext, Page, Route, expect

from cairn.api.cli.datadir import find_store, open_store
from cairn.api.cli.store import keys_of
from cairn.api.dashboard.run_page import step_conversation
from cairn.commands.jobs.claims import claim_job, write_job
from cairn.commands.jobs.pull_facts import record_look
from cairn.commands.jobs.pulls import pull_id
from cairn.commands.settings import Settings
from cairn.domain.jobs.events import (
    JobArtifactAdded,
    JobEvent,
    JobPublished,
    JobStageFinished,
    JobStageStarted,
    JobStepFinished,
    JobStepStarted,
    JobSucceeded,
)
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.pulls import Check, Observation
from cairn.domain.jobs.transcript import (
    Command,
    ErrorEntry,
    FileEdit,
    Message,
    Raw,
    Thinking,
    ToolCall,
    ToolResult,
    TranscriptEntry,
    UsageEntry,
    encode,
    numbered,
)
from cairn.domain.tasks.states import Flags
from cairn.streams.artifacts import FileArtifactStore
from cairn.streams.output import OutputChunk, OutputStream
from cairn.streams.store import EventStore
from tests.dashboard.conftest import Cairn, run_axe, unique, wait_until
from tests.dashboard.test_board import create
from tests.dashboard.test_queue import NOBODY, submit

T = TypeVar("T")
PROBLEM = "application/problem+json"
HUNK = """diff --git a/hello.txt b/hello.txt
new file mode 100644
--- /dev/null
+++ b/hello.txt
@@ -0,0 +1,2 @@
+hello
+world
"""
FIRST: list[TranscriptEntry] = [
    Message(role="user", text="Write hello.txt with a greeting.\n\n" + "Context. " * 200),
    Thinking(text="The file does not exist yet: create it, then check it."),
    ToolCall(tool="Write", summary="hello.txt", call_id="c1"),
    ToolResult(tool="Write", ok=True, excerpt="File created successfully", call_id="c1"),
    Command(command="echo ran", exit_status=0, output="ran"),
    FileEdit(path="hello.txt", added=2, removed=0, hunk=HUNK),
    Message(role="assistant", text="Wrote hello.txt.\nIt says hello."),
    UsageEntry(tokens_in=1200, tokens_cached=600, tokens_out=80, cost_usd=0.0123),
    Raw(text='{"type":"weird"}'),
]
SECOND: list[TranscriptEntry] = [
    Message(role="user", text="Check the greeting."),
    Message(role="operator", text="Use the v2 endpoint"),
    Message(role="cairn", text="The operator's message reached the agent."),
    ToolCall(tool="Bash", summary="cat hello.txt"),
    ToolResult(tool="Bash", ok=False, excerpt="cat: hello.txt: Permission denied"),
    Command(command="sleep 600", exit_status=None),
    ErrorEntry(message="rate limited, gave up"),
    UsageEntry(tokens_in=300, tokens_out=20),
]


def job_of(cairn: Cairn, job_id: str) -> dict[str, Any]:
    with cairn.api() as api:
        job: dict[str, Any] = api.get(f"/api/queue/jobs/{job_id}").json()
        return job


def running(cairn: Cairn, instructions: str) -> str:
    """A job whose fake agent prints for a minute, once it runs."""
    task = {"instructions": instructions, "publish": {"mode": "none"}}
    job_id = submit(cairn, unique("run"), instructions, task=task)
    wait_until(lambda: job_of(cairn, job_id)["status"] == "running", 30, "the job to run")
    return job_id


def test_live_output_follow_filter_copy_and_cancel(
    page: Page, context: BrowserContext, cairn: Cairn
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    job_id = running(cairn, "Print a lot SLOW")
    page.goto(f"{cairn.base}/queue/{job_id}")
    output = page.locator("#output")
    expect(page.locator("#output-status")).to_have_text("Live")  # said while folded away
    page.click("#raw-output summary")
    expect(output).to_contain_text("fake agent output line 3", timeout=15_000)
    expect(page.locator("[data-region=timeline]")).to_contain_text("execute")
    # Follow keeps the end in view; the filter shows only matching lines.
    wait_until(lambda: page.evaluate(
        "() => { const o = document.getElementById('output'); "
        "return o.scrollHeight - o.scrollTop - o.clientHeight < 8 }"), 5, "follow")  # fmt: skip
    page.fill("#output-filter", "line 2")
    visible = page.locator("#output > div:not(.hidden)")
    expect(visible.first).to_contain_text("line 2")
    assert all("line 2" in t for t in visible.all_inner_texts())
    page.click("#output-copy")
    expect(page.locator("#output-copy")).to_have_text("Copied")
    assert "line 2" in page.evaluate("() => navigator.clipboard.readText()")
    # Cancel from the page: it shows cancelled within a second or two.
    page.once("dialog", lambda dialog: dialog.accept())
    started = time.monotonic()
    page.click("button:has-text('Cancel job')")
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=10_000)
    assert time.monotonic() - started < 2.5, time.monotonic() - started
    expect(page.locator("#output-status")).to_contain_text("Finished")
    expect(page.locator("button:has-text('Resubmit')")).to_be_visible()


def test_pause_resume_and_an_operator_message(page: Page, cairn: Cairn) -> None:
    job_id = running(cairn, "Hold on SLOW")
    page.goto(f"{cairn.base}/queue/{job_id}")
    page.fill("#pause-reason", "Looking at the plan")
    page.click("button:text-is('Pause')")
    expect(page.locator(".notice")).to_contain_text("Paused")
    expect(page.locator("[data-region=head] .badge.paused")).to_contain_text("Looking at the plan")
    page.click("button:has-text('Resume')")
    expect(page.locator("[data-region=head] .badge.paused")).to_have_count(0)
    page.fill("#f-text", "   ")
    page.click("button:has-text('Send message')")
    expect(page.locator("#f-text-error")).to_be_visible()
    page.fill("#f-text", "Use the v2 endpoint, not v1")
    page.click("button:has-text('Send message')")
    expect(page.locator("#messages ol")).to_contain_text("Use the v2 endpoint, not v1")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Cancel job')")
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=10_000)


def test_the_output_falls_back_to_polling(page: Page, cairn: Cairn) -> None:
    def refuse(route: Route) -> None:
        route.fulfill(status=503, body="no streams today")

    page.route(re.compile(r".*/output/stream.*"), refuse)
    job_id = running(cairn, "Polled SLOW")
    page.goto(f"{cairn.base}/queue/{job_id}")
    expect(page.locator("#output-status")).to_have_text("Polling")
    expect(page.locator("#output")).to_contain_text("fake agent output line 2", timeout=15_000)
    with cairn.api() as api:
        api.post(f"/api/queue/jobs/{job_id}/cancel", json={"reason": "done polling"})


def test_a_finished_run_shows_its_steps_artifacts_and_patch(page: Page, cairn: Cairn) -> None:
    job_id = submit(cairn, unique("done"), "Touch a file")
    wait_until(lambda: job_of(cairn, job_id)["status"] == "succeeded", 60, "the job to succeed")
    page.goto(f"{cairn.base}/queue/{job_id}")
    timeline = page.locator("[data-region=timeline]")
    for text in ("prepare", "execute", "publish", "step-1", "exit 0"):
        expect(timeline).to_contain_text(text)
    expect(page.locator("#output")).to_contain_text("fake agent output line 1")
    expect(page.locator("#output-status")).to_contain_text("Finished")
    artifacts = page.locator("[data-region=artifacts] a")
    expect(artifacts.first).to_be_visible()
    href = artifacts.first.get_attribute("href") or ""
    assert page.request.get(cairn.base + href).ok
    expect(page.locator("section[aria-labelledby=patch-h] pre")).to_contain_text(
        "FAKE_AGENT_NOTES.md"
    )
    log = page.request.get(f"{cairn.base}/queue/{job_id}/log")
    assert log.ok and "fake agent output line 1" in log.text()


def test_a_failure_before_execution_is_shown_plainly(page: Page, cairn: Cairn) -> None:
    body = {"type": "task", "project": unique("prepare"), "maxAttempts": 1,
            "payload": {"repository": "acme/missing", "task": {"instructions": "x"}}}  # fmt: skip
    with cairn.api() as api:
        job_id = api.post("/api/queue/jobs", json=body).json()["id"]
    wait_until(lambda: job_of(cairn, job_id)["status"] in ("failed", "dead_letter"), 60)
    page.goto(f"{cairn.base}/queue/{job_id}")
    problem = page.locator("section[aria-labelledby=failure-h]")
    expect(problem).to_contain_text("before execution started (in prepare)")
    expect(problem).to_contain_text("acme/missing")
    page.click("button:has-text('Resubmit')")
    page.wait_for_url(re.compile(r".*/queue/job-.*"))
    assert job_id not in page.url
    expect(page.locator("section[aria-labelledby=facts-h]")).to_contain_text(job_id)


def test_live_updates_pause_while_the_tab_is_hidden(page: Page, cairn: Cairn) -> None:
    project = unique("hidden")
    page.goto(f"{cairn.base}/tasks?project={project}")
    expect(page.locator("#live-status")).to_have_text("Live")
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {value: true, configurable: true});
        document.dispatchEvent(new Event('visibilitychange')); }""")
    expect(page.locator("#live-status")).to_have_text("Paused while hidden")
    create(cairn, project, "Made while hidden")
    page.wait_for_timeout(1500)
    expect(page.locator("#board")).not_to_contain_text("Made while hidden")
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {value: false, configurable: true});
        document.dispatchEvent(new Event('visibilitychange')); }""")
    expect(page.locator("#board")).to_contain_text("Made while hidden")
    expect(page.locator("#live-status")).to_have_text("Live")


def test_a_change_appears_on_an_open_run_page_within_a_second(page: Page, cairn: Cairn) -> None:
    job_id = submit(cairn, unique("liverun"), "Waits", requiredCapabilities=["quantum"])
    page.goto(f"{cairn.base}/queue/{job_id}")
    expect(page.locator("#live-status")).to_have_text("Live")
    started = time.monotonic()
    with cairn.api() as api:
        api.post(f"/api/queue/jobs/{job_id}/cancel", json={"reason": "changed my mind"})
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=5_000)
    assert time.monotonic() - started < 1.0


# ---- the conversation ----------------------------------------------------------------------


def on_store(cairn: Cairn, work: Callable[[EventStore], Awaitable[T]]) -> T:
    """`work` done on the store of `cairn`'s `cairn up`, on a loop of its own thread (this one
    runs Playwright's)."""

    async def run() -> T:
        settings = Settings.from_env({"CAIRN_DATA_DIR": str(cairn.root / ".cairn")})
        client = await open_store(find_store(settings))
        try:
            return await work(EventStore(client, keys_of(settings), settings.command_ttl_s))
        finally:
            await client.aclose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=60)


def talked(cairn: Cairn) -> str:
    """A job that ran two steps, as a worker reports one: each step's transcript stored as an
    artifact of the attempt (bound to the log by a job.artifact_added), then succeeded."""
    job_id = submit(cairn, unique("talk"), "Write hello.txt", requiredCapabilities=NOBODY)
    wait_until(lambda: job_of(cairn, job_id)["status"] == "queued", 10, "the job to be queued")
    artifacts = FileArtifactStore(cairn.root / ".cairn" / "artifacts", 10_000_000)

    def ran(job: Job) -> list[JobEvent]:
        events: list[JobEvent] = [JobStageStarted(stage="execute", epoch=job.epoch)]
        for index, entries, extra in (
            (1, FIRST, {"session_id": "session-1"}),
            (2, SECOND, {"refused_edits": ["write /etc/hosts"]}),
        ):
            body = b"".join(encode(e) + b"\n" for e in numbered(entries, index, 0))
            name = f"transcript/step-{index}.jsonl"
            stored = artifacts.put_bytes(job.id, job.attempt, name, body)
            events += [
                JobStepStarted(epoch=job.epoch, index=index, step_id=f"step-{index}",
                               title=["Write the file", "Check it"][index - 1]),
                JobStepFinished(epoch=job.epoch, index=index, step_id=f"step-{index}",
                                outcome="succeeded", exit_status=0, files=1, insertions=2,
                                transcript_entries=len(entries), **extra),
                JobArtifactAdded(epoch=job.epoch, name=stored.name, path=stored.path,
                                 ref=f"/api/queue/jobs/{job.id}/artifacts/{stored.path}",
                                 size=stored.size, sha256=stored.sha256,
                                 content_type=stored.content_type),
            ]  # fmt: skip
        return [*events, JobStageFinished(stage="execute", epoch=job.epoch, outcome="succeeded"),
                JobSucceeded(epoch=job.epoch, summary="Wrote hello.txt")]  # fmt: skip

    async def run(store: EventStore) -> None:
        await claim_job(store, job_id, "w-conversation", Flags())
        await write_job(store, job_id, ran, Flags(), actor="w-conversation")

    on_store(cairn, run)
    wait_until(lambda: job_of(cairn, job_id)["status"] == "succeeded", 10, "the job to succeed")
    return job_id


def test_the_run_page_reads_as_the_agents_conversation(page: Page, cairn: Cairn) -> None:
    job_id = talked(cairn)
    with cairn.api() as api:
        asked = api.post(f"/api/queue/jobs/{job_id}/follow-ups",
                         json={"message": "Now add a test\nand a README line"})  # fmt: skip
        assert asked.status_code == 201, asked.text
    follow_up = asked.json()["id"]
    page.goto(f"{cairn.base}/queue/{job_id}")
    talk = page.locator("#conversation")
    step_1 = talk.locator("article").nth(0)
    step_2 = talk.locator("article").nth(1)
    expect(step_1.locator("h3")).to_contain_text("Step 1: Write the file")
    # Its usage as its transcript says (no usage on the step itself: a step's usage would show
    # the telemetry page's usage tables, which test_accessibility does not expect).
    expect(step_1).to_contain_text("1,200 in (600 cached) · 80 out · $0.0123")
    expect(step_1.locator(".turn.assistant")).to_have_text("Wrote hello.txt.\nIt says hello.")
    command = step_1.locator(".turn.command")
    expect(command.locator("summary")).to_have_text("$ echo ran exit 0")
    expect(command.locator(".badge.ok")).to_be_visible()
    expect(command.locator("pre")).to_be_hidden()  # its output, a click away
    expect(step_1.locator(".turn.edit summary")).to_have_text("Edited hello.txt +2 \u22120")
    expect(step_1.locator("pre.diff .add").first).to_be_visible()  # a small hunk shows opened
    expect(step_1.locator("pre.diff .add")).to_have_text(["+hello", "+world"])
    # The prompt and the thinking are folded; a tool call is one line with its result inside.
    expect(step_1.locator(".turn.prompt .text")).to_be_hidden()
    expect(step_1.locator(".turn.thinking .text")).to_be_hidden()
    tool = step_1.locator(".turn.tool")
    expect(tool).to_have_count(1)
    expect(tool.locator("summary")).to_have_text("Write · hello.txt")
    tool.locator("summary").click()
    expect(tool.locator("pre")).to_have_text("File created successfully")
    expect(step_1.locator(".turn.unknown summary")).to_have_text("1 line the parser did not know")
    # Step 2: what the operator and Cairn said stand out; the failed call, the command that
    # did not finish, the error, the refused edits; usage from its transcript (no price).
    expect(step_2.locator(".turn.operator")).to_have_text("Operator: Use the v2 endpoint")
    expect(step_2.locator(".turn.cairn")).to_have_text(
        "Cairn: The operator's message reached the agent."
    )
    expect(step_2.locator(".turn.tool summary")).to_have_text("Bash · cat hello.txt failed")
    expect(step_2.locator(".turn.command")).to_have_text("$ sleep 600 did not finish")
    expect(step_2.locator(".turn.error")).to_have_text("Error: rate limited, gave up")
    expect(step_2.locator(".turn.refused")).to_contain_text(
        "The CLI refused the agent's edits: write /etc/hosts"
    )
    expect(step_2).to_contain_text("300 in · 20 out · no price")
    # No raw JSON on screen until asked for: the raw output opens in one click.
    assert '{"type"' not in page.inner_text("body")
    raw = page.locator("#raw-output")
    expect(page.locator("#output")).to_be_hidden()
    raw.locator("summary").click()
    expect(page.locator("#output")).to_be_visible()
    expect(raw.locator("a:has-text('Download full log')")).to_have_attribute(
        "href", f"/queue/{job_id}/log"
    )
    # The follow-up links both ways, its message on one line.
    expect(talk.locator(".follow-ups li")).to_have_text(
        f"{follow_up}: Now add a test and a README line"
    )
    assert run_axe(page) == []
    page.locator("#raw-output summary").click()
    page.screenshot(path="/tmp/run-conversation.png", full_page=True)
    talk.locator(f".follow-ups a[href='/queue/{follow_up}']").click()
    page.wait_for_url(re.compile(f".*/queue/{follow_up}"))
    expect(page.locator("#conversation")).to_contain_text(f"Follows job {job_id}")


def test_the_conversation_grows_while_the_job_runs(page: Page, cairn: Cairn) -> None:
    job_id = submit(cairn, unique("growing"), "Write hello.txt", requiredCapabilities=NOBODY)
    wait_until(lambda: job_of(cairn, job_id)["status"] == "queued", 10, "the job to be queued")

    def started(job: Job) -> list[JobEvent]:
        step = JobStepStarted(epoch=job.epoch, index=1, step_id="step-1", title="Talk")
        return [JobStageStarted(stage="execute", epoch=job.epoch), step]

    async def start(store: EventStore) -> None:
        await claim_job(store, job_id, "w-conversation", Flags())
        await write_job(store, job_id, started, Flags(), actor="w-conversation")

    def say(entries: list[TranscriptEntry], start: int) -> None:
        """Entries of step 1 as the worker sends them while it runs: on the job's output."""
        chunks = [OutputChunk(encode(e).decode(), step=1, stream="transcript")
                  for e in numbered(entries, 1, start)]  # fmt: skip

        async def send(store: EventStore) -> None:
            await OutputStream(store.redis, store.keys).append(job_id, chunks)

        on_store(cairn, send)

    on_store(cairn, start)
    wait_until(lambda: len(job_of(cairn, job_id)["steps"]) == 1, 10, "the step to start")
    page.goto(f"{cairn.base}/queue/{job_id}")
    step = page.locator("#conversation article")
    expect(step).to_contain_text("Nothing yet.")
    say(FIRST[:4], 0)
    tool = step.locator(".turn.tool")
    expect(tool.locator("summary")).to_have_text("Write · hello.txt", timeout=5_000)
    tool.locator("summary").click()  # opened by the person: it stays open as the page grows
    started_at = time.monotonic()
    say(FIRST[4:7], 4)
    expect(step.locator(".turn.assistant")).to_have_text("Wrote hello.txt.\nIt says hello.")
    assert time.monotonic() - started_at < 3.5, time.monotonic() - started_at
    expect(tool.locator("pre")).to_have_text("File created successfully")
    expect(step.locator(".turn.prompt .text")).to_be_hidden()
    expect(step.locator(".turn.edit pre.diff")).to_be_visible()
    with cairn.api() as api:
        api.post(f"/api/queue/jobs/{job_id}/cancel", json={"reason": "done talking"})


def test_the_transcript_pages_after_a_cursor(cairn: Cairn) -> None:
    job_id = talked(cairn)
    url = f"/api/queue/jobs/{job_id}/transcript"
    with cairn.api() as api:
        whole = api.get(url).json()
        assert [(i["step"], i["seq"], i["kind"]) for i in whole["items"]] == [
            (step, seq, e.kind) for step, entries in ((1, FIRST), (2, SECOND))
            for seq, e in enumerate(entries)
        ]  # fmt: skip
        assert whole["next"] == f"2.{len(SECOND) - 1}" and whole["running"] is False
        assert whole["items"][4] == {"kind": "command", "step": 1, "seq": 4,
                                     "command": "echo ran", "exit_status": 0, "output": "ran"}
        first = api.get(url, params={"limit": 3}).json()
        assert [i["seq"] for i in first["items"]] == [0, 1, 2] and first["next"] == "1.2"
        rest = api.get(url, params={"after": first["next"]}).json()
        assert rest["items"] == whole["items"][3:]
        one_step = api.get(url, params={"step": 2}).json()
        assert one_step["items"] == whole["items"][len(FIRST):]
        done = api.get(url, params={"after": whole["next"]}).json()
        assert done["items"] == [] and done["next"] == whole["next"]  # read on from the same
        bad = api.get(url, params={"after": "bad"})
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
        assert bad.json()["errors"][0]["path"] == "query.after"


def test_a_step_reads_as_turns_each_call_with_its_result() -> None:
    calls = numbered([
        ToolCall(tool="Read", summary="a.py", call_id="a"), ToolCall(tool="Bash", summary="ls"),
        ToolResult(tool="Bash", excerpt="a.py"),
        ToolResult(tool="Read", excerpt="x = 1", call_id="a"),
        ToolResult(tool="Grep", ok=False, excerpt="no match"), Raw(text="{}"), Raw(text="?"),
        UsageEntry(tokens_in=5, tokens_out=1),
    ], 1, 0)  # fmt: skip
    step = {"index": 1, "step_id": "step-1", "status": "succeeded"}
    part = step_conversation(step, calls)
    assert [(t["kind"], t["tool"], (t.get("result") or {}).get("excerpt")) for t in part["turns"]] \
        == [("tool_call", "Read", "x = 1"), ("tool_call", "Bash", "a.py"),
            ("tool_result", "Grep", None)]  # fmt: skip
    assert part["raw"] == ["{}", "?"] and part["refused_edits"] == []
    assert (part["usage"]["tokens_in"], part["usage"]["cost_usd"]) == (5, None)
    # The step's own usage (with its model) wins over what its transcript says.
    usage = {"tokens_in": 9, "tokens_cached": 0, "tokens_out": 2, "cost_usd": 0.5, "model": "m"}
    assert step_conversation({**step, "usage": usage}, calls)["usage"] == usage


def test_a_finished_run_is_followed_up_from_its_page(page: Page, cairn: Cairn) -> None:
    job_id = talked(cairn)
    page.goto(f"{cairn.base}/queue/{job_id}")
    box = page.locator("#follow-up")
    box.locator("button:has-text('Follow up')").click()
    expect(page.locator("#f-follow-up-error")).to_be_visible()  # an empty message is refused
    page.fill("#f-follow-up", "Also add a test")
    page.locator("#follow-up button:has-text('Follow up')").click()
    expect(page.locator(".notice")).to_contain_text("Follow-up queued")
    expect(page.locator("#conversation")).to_contain_text(f"Follows job {job_id}")
    follow_up = job_of(cairn, job_id)["followedBy"][0]["jobId"]
    assert page.url.split("?")[0].endswith(f"/queue/{follow_up}")
    assert job_of(cairn, follow_up)["normalized"]["task"]["instructions"] == "Also add a test"


def test_a_tasks_pull_request_shows_on_its_card_page_and_run(page: Page, cairn: Cairn) -> None:
    """A run that opened a PR whose tests fail (a fix of it is queued): the card shows the PR,
    a mark per check with its name, and the board's "failing checks" filter keeps it; the run
    page has its timeline."""
    project = unique("prs")
    spec = {"repository": "acme/app", "requiredCapabilities": NOBODY,
            "task": {"instructions": "Fix it", "publish": {"mode": "pr"}}}  # fmt: skip
    task = create(cairn, project, "Fix the greeting", spec=spec)
    with cairn.api() as api:
        ran = api.post(f"/api/v2/tasks/{task['id']}/run")
        assert ran.status_code in (200, 201, 202), ran.text
        job_id = ran.json()["job_id"]
    url = f"https://github.com/octo/repo/pull/{time.monotonic_ns() % 1000}"

    async def opened_and_failing(store: EventStore) -> None:
        await claim_job(store, job_id, "w-pr", Flags())
        await write_job(store, job_id, lambda job: [
            JobPublished(epoch=job.epoch, outcome="PUBLISHED_PR", branch="cairn/pr", pr_url=url,
                         detail={"base": "main"}),
            JobSucceeded(epoch=job.epoch, summary="opened a PR")], Flags(), actor="w-pr")
        pr = pull_id(store.keys, project, url)
        seen = Observation(checks=[Check(name="tests", conclusion="failure"),
                                   Check(name="lint", conclusion="success")])
        await record_look(store, pr, seen, Flags())

    on_store(cairn, opened_and_failing)
    wait_until(lambda: job_of(cairn, job_id)["status"] == "succeeded", 10, "the run to end")

    def failing() -> bool:
        with cairn.api() as api:
            shown = api.get(f"/api/queue/jobs/{job_id}/pull-request")
            return shown.status_code == 200 and shown.json()["failing"] == ["tests"]

    wait_until(failing, 10, "the PR's checks to be read")
    page.goto(f"{cairn.base}/tasks?project={project}&pr=failing")
    line = page.locator(f"#card-{task['id']} .pr")
    expect(line).to_contain_text("open")
    expect(line.locator(".mark.failed")).to_have_attribute("title", "tests: failure")
    expect(line.locator(".mark.passed")).to_have_attribute("title", "lint: success")
    page.goto(f"{cairn.base}/tasks?project={project}&pr=review")
    expect(page.locator(f"#card-{task['id']}")).to_have_count(0)  # its checks fail
    page.goto(f"{cairn.base}/tasks/{task['id']}")
    expect(page.locator(".pr .mark.failed")).to_have_count(1)
    page.goto(f"{cairn.base}/queue/{job_id}")
    timeline = page.locator("dd details:has-text('Timeline')")
    timeline.locator("summary").click()
    expect(timeline).to_contain_text("checks: lint success, tests failure")
    assert run_axe(page) == []
