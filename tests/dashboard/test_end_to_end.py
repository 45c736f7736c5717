"""End to end in the browser: sign in, create a task, make it ready, run it, watch its live
output on the run page, see it reach in_review, approve it to done."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import Cairn, login, unique


def test_from_sign_in_to_done(page: Page, cairn: Cairn) -> None:
    page.click("header form[action='/logout'] button")
    login(page, cairn)
    project = unique("e2e")
    page.goto(f"{cairn.base}/tasks?project={project}")
    page.click("a:has-text('New task')")
    page.fill("#f-title", "Tidy the changelog")
    page.select_option("#f-task_type", "chore")
    page.fill("#f-description", "Sort the entries by date. MEDIUM")
    page.click("button:has-text('Create task')")
    card = page.locator(".card", has_text="Tidy the changelog")
    expect(page.locator("#col-backlog")).to_contain_text("Tidy the changelog")
    # Ready: the scheduler runs a ready task (Run now, tested on its own, would not wait).
    card.locator("summary").click()
    card.locator("button[value=ready]").click()
    run_link = card.locator("a[href^='/queue/job-']").first
    expect(run_link).to_be_visible(timeout=10_000)
    run_link.click()
    page.wait_for_url(re.compile(r".*/queue/job-.*"))
    expect(page.locator("#output")).to_contain_text("fake agent output line", timeout=20_000)
    timeline = page.locator("[data-region=timeline]")
    expect(timeline).to_contain_text("Do the chore", timeout=20_000)
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
    page.click("section[aria-labelledby=facts-h] a[href^='/tasks/task-']")
    facts = page.locator("section[aria-labelledby=facts-h]")
    expect(facts).to_contain_text("In review")
    expect(page.locator("section[aria-labelledby=runs-h]")).to_contain_text("succeeded")
    page.select_option("#move-to", "done")
    page.click("form[action$='/move'] button:has-text('Move')")
    expect(page.locator(".notice")).to_have_text("Moved.")
    expect(facts).to_contain_text("Done")
    page.goto(f"{cairn.base}/tasks?project={project}")
    expect(page.locator("#col-done")).to_contain_text("Tidy the changelog")
    expect(page.locator("#col-done .card").first).to_contain_text("succeeded")
