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


def test_the_timeline_counts_by_the_minute_of_each_event() -> None:
    from collections import Counter

    from cairn.domain.jobs.events import (
        JobCancelled,
        JobClaimed,
        JobEvent,
        JobFailed,
        JobSubmitted,
        JobSucceeded,
    )
    from cairn.domain.jobs.job import evolve
    from cairn.projections.jobs.queue import count_timeline

    counts: Counter[tuple[str, str]] = Counter()
    submitted = JobSubmitted(project="p", job_type="noop", submitted_type="noop", source="queue",
                             payload={}, normalized={}, required_capabilities=["noop"])  # fmt: skip
    steps: list[tuple[JobEvent, str]] = [
        (submitted, "2026-11-30T10:00:59.500Z"),
        (JobClaimed(worker_id="w", epoch=1, attempt=1), "2026-11-30T10:01:02.000Z"),
        (JobFailed(epoch=1, error={}, retry_at="2026-11-30T10:01:03Z"), "2026-11-30T10:01:02.500Z"),
        (JobClaimed(worker_id="w", epoch=2, attempt=2), "2026-11-30T10:01:04.000Z"),
        (JobSucceeded(epoch=2, summary="ok"), "2026-11-30T23:59:30.000Z"),
    ]
    job = None
    for version, (event, ts) in enumerate(steps, 1):
        job = evolve(job, event, "job-00-x", version, ts)
        count_timeline(counts, job, event)
    assert counts == {
        ("2026-11-30", "submitted|10:00"): 1,
        ("2026-11-30", "wait_ms|10:01"): 2500,  # the first claim only: 10:00:59.5 -> 10:01:02
        ("2026-11-30", "claims|10:01"): 1,
        ("2026-11-30", "succeeded|23:59"): 1,  # a retried failure is not a finish
    }
    assert job is not None
    cancelled: Counter[tuple[str, str]] = Counter()
    gone = evolve(evolve(None, submitted, "job-00-y", 1, "2026-12-01T00:00:00.000Z"),
                  JobCancelled(reason="no"), "job-00-y", 2, "2026-12-01T00:00:01.000Z")  # fmt: skip
    count_timeline(cancelled, gone, JobCancelled(reason="no"))
    assert cancelled == {("2026-12-01", "cancelled|00:00"): 1}
