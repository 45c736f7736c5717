"""The run page: live output (SSE, and polling when the stream is refused), follow, filter and
copy; the stage and step timeline; artifacts and the patch; controls (cancel, pause and
resume, operator messages, resubmit); a failure before execution shown as plainly as one
during it; live updates paused while the tab is hidden."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import BrowserContext, Page, Route, expect

from tests.dashboard.conftest import Cairn, unique, wait_until
from tests.dashboard.test_board import create
from tests.dashboard.test_queue import submit


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
    expect(page.locator("#output-status")).to_have_text("Live")
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
    page.click("button:has-text('Pause at next step')")
    expect(page.locator(".notice")).to_contain_text("Pause requested")
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
