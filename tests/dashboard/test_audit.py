"""Audit: the log newest first, filtered by type glob, aggregate and project (kept in the
URL), each envelope readable, new events live."""

from __future__ import annotations

import time

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import Cairn, unique
from tests.dashboard.test_board import create


def test_filters_and_envelopes(page: Page, cairn: Cairn) -> None:
    project = unique("audit")
    task = create(cairn, project, "Audited")
    with cairn.api() as api:
        api.patch(f"/api/v2/tasks/{task['id']}", json={"title": "Audited twice"})
    page.goto(f"{cairn.base}/audit?project={project}")
    rows = page.locator("#audit-rows tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("task.updated")  # newest first
    expect(rows.nth(1)).to_contain_text("task.created")
    page.fill("#a-type", "task.c*")
    page.click("form[role=search] button:has-text('Apply')")
    expect(rows).to_have_count(1)
    assert "type=task.c%2A" in page.url or "type=task.c*" in page.url
    rows.first.locator("summary").click()
    envelope = rows.first.locator("pre")
    for field in ('"type": "task.created"', f'"agg": "{task["id"]}"', '"actor": "admin"',
                  '"position"', '"corr"', '"schema": 1', '"Audited"'):  # fmt: skip
        expect(envelope).to_contain_text(field)
    page.goto(f"{cairn.base}/audit?aggregate={task['id']}")
    expect(rows).to_have_count(2)


def test_new_events_appear_live(page: Page, cairn: Cairn) -> None:
    project = unique("liveaudit")
    page.goto(f"{cairn.base}/audit?project={project}")
    expect(page.locator("#live-status")).to_have_text("Live")
    started = time.monotonic()
    create(cairn, project, "Seen live")
    first = page.locator("#audit-rows tr").first
    expect(first).to_contain_text("task.created", timeout=5_000)
    assert time.monotonic() - started < 1.0
    create(cairn, unique("elsewhere"), "Not this project")
    page.wait_for_timeout(500)
    expect(page.locator("#audit-rows tr")).to_have_count(1)
