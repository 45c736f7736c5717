"""Workers: the connected ones with their capabilities, host, last seen and running jobs;
drain, quiesce and resume with a required reason and a banner on every page while paused;
queue depth per capability signature; projection lag."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import Cairn, unique
from tests.dashboard.test_queue import NOBODY, submit


def test_the_local_worker_depth_and_lag_are_shown(page: Page, cairn: Cairn) -> None:
    submit(cairn, unique("depth"), "Waits for quantum", requiredCapabilities=NOBODY)
    page.goto(f"{cairn.base}/workers")
    workers = page.locator("section[aria-labelledby=workers-h]")
    expect(workers).to_contain_text("local-1")
    for capability in ("git", "codex", "claude", "gemini"):
        expect(workers.locator(".label", has_text=capability).first).to_be_visible()
    expect(workers).to_contain_text("s ago")
    depth = page.locator("section[aria-labelledby=depth-h]")
    row = depth.locator("tr", has_text="codex+git+quantum")
    expect(row).to_contain_text("none")  # no live worker can take it
    lag = page.locator("section[aria-labelledby=lag-h]")
    for projection in ("board", "queue"):
        expect(lag.locator("tr", has_text=projection)).to_be_visible()


def test_pausing_needs_a_reason_and_shows_a_banner_everywhere(page: Page, cairn: Cairn) -> None:
    page.goto(f"{cairn.base}/workers")
    page.check("#f-mode-quiesce")
    page.click("button:has-text('Set mode')")
    expect(page.locator("#f-reason-error")).to_be_visible()  # refused: no reason
    expect(page.locator("#pause-banner")).to_have_count(0)
    with cairn.api() as api:
        assert api.get("/api/queue/workers").json()["pause"] == "off"
    try:
        page.check("#f-mode-quiesce")
        page.fill("#f-reason", "Deploying the database")
        page.click("button:has-text('Set mode')")
        expect(page.locator(".notice")).to_have_text("Worker pause mode changed.")
        for path in ("/tasks", "/queue", "/queue/new", "/telemetry", "/audit"):
            page.goto(cairn.base + path)
            banner = page.locator("#pause-banner")
            expect(banner).to_contain_text("Workers are paused (quiesce)")
            expect(banner).to_contain_text("Deploying the database")
            expect(banner).to_contain_text("by admin")
    finally:
        page.goto(f"{cairn.base}/workers")
        page.check("#f-mode-off")
        page.fill("#f-reason", "Deploy done")
        page.click("button:has-text('Set mode')")
    expect(page.locator("#pause-banner")).to_have_count(0)
    with cairn.api() as api:
        state = api.get("/api/queue/workers").json()["pauseState"]
    assert state["mode"] == "off" and state["reason"] == "Deploy done"
