"""Telemetry: volume by type, failures by runtime and stage, publish outcome rates, and
throughput and queue wait over time, drawn as charts that carry their numbers."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import Cairn, unique, wait_until
from tests.dashboard.test_queue import submit


def test_the_charts_show_what_the_queue_did(page: Page, cairn: Cairn) -> None:
    project = unique("telemetry")
    with cairn.api() as api:
        before = api.get("/api/queue/telemetry").json()["volumeByType"].get("noop", 0)
        ids = [api.post("/api/queue/jobs", json={"type": "noop", "payload": {},
                                                 "project": project}).json()["id"]
               for _ in range(3)]  # fmt: skip
        wait_until(lambda: all(api.get(f"/api/queue/jobs/{i}").json()["status"] == "succeeded"
                               for i in ids), 30, "noop jobs to succeed")  # fmt: skip
    submit(cairn, project, "Counted as task volume")
    page.goto(f"{cairn.base}/telemetry")
    volume = page.locator("figure", has_text="Job volume by type")
    expect(volume.locator("svg[role=img]")).to_be_visible()
    expect(volume.locator("desc")).to_contain_text(f"noop: {before + 3}")
    throughput = page.locator("figure", has_text="Throughput, last hour")
    expect(throughput.locator("svg rect.bar").first).to_be_attached()
    throughput.locator("summary").click()
    expect(throughput.locator("table")).not_to_contain_text("All zero.")
    wait = page.locator("figure", has_text="Queue wait, last hour")
    expect(wait.locator("desc")).to_contain_text("Peak")
    for title in ("Failures by runtime", "Failures by stage", "Publish outcome rates",
                  "Throughput, last 24 hours", "Submissions, last hour"):  # fmt: skip
        expect(page.locator("figure", has_text=title)).to_be_visible()
