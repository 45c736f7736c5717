"""The queue page (filters in the URL, pages, capabilities no worker has, live) and the
typed submit page (errors at their fields, a good job in the queue without a reload, the
steps editor, quick actions and their promotion, editing a queued job)."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from tests.dashboard.conftest import Cairn, unique

NOBODY = ["quantum"]  # a capability no worker offers: such a job stays queued


def submit(cairn: Cairn, project: str, instructions: str, **payload: Any) -> str:
    body = {"type": "task", "project": project, "payload": {
        "repository": "acme/app", "task": {"instructions": instructions}, **payload}}  # fmt: skip
    with cairn.api() as api:
        made = api.post("/api/queue/jobs", json=body)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])


def test_filters_stay_in_the_url_and_pages_follow(page: Page, cairn: Cairn) -> None:
    project = unique("filters")
    for i in range(27):
        submit(cairn, project, f"Job number {i}", requiredCapabilities=NOBODY)
    submit(cairn, project, "The claude one", targetRuntime="claude", requiredCapabilities=NOBODY)
    page.goto(f"{cairn.base}/queue?project={project}")
    page.select_option("#f-runtime", "claude")
    page.click("form[role=search] button:has-text('Apply')")
    page.wait_for_url(re.compile(rf".*runtime=claude.*project={project}.*"))
    rows = page.locator("[data-region=jobs] tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("The claude one")
    expect(page.locator("#f-runtime")).to_have_value("claude")  # the form says what is applied
    # 28 jobs at 25 a page: a next page with 3, and back.
    page.goto(f"{cairn.base}/queue?project={project}&limit=25")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text("The claude one")  # newest first
    page.click("a[rel=next]")
    expect(rows).to_have_count(3)
    expect(page.locator("[data-region=jobs]")).to_contain_text("Job number 0")
    assert "cursor=" in page.url and "limit=25" in page.url
    page.click("a:has-text('First page')")
    expect(rows).to_have_count(25)
    expect(page.locator(".counts")).to_contain_text("queued 28")


def test_a_bad_filter_is_refused_at_its_field(page: Page, cairn: Cairn) -> None:
    response = page.goto(f"{cairn.base}/queue?status=sleeping")
    assert response is not None and response.status == 422
    expect(page.locator("#f-status-error")).to_be_visible()
    expect(page.locator("#error-summary a[href='#f-status']")).to_be_visible()


def test_jobs_no_worker_can_take_say_what_is_missing(page: Page, cairn: Cairn) -> None:
    project = unique("missing")
    job_id = submit(cairn, project, "Needs a quantum computer", requiredCapabilities=NOBODY)
    page.goto(f"{cairn.base}/queue?project={project}")
    expect(page.locator(f"#job-{job_id}")).to_contain_text("no worker: needs quantum")
    page.goto(f"{cairn.base}/queue/{job_id}")
    problem = page.locator("[data-region=problem]")
    expect(problem).to_contain_text("No live worker can take this job")
    expect(problem).to_contain_text("quantum")


def test_the_typed_form_refuses_a_bad_repository_at_its_field(
    page: Page, context: BrowserContext, cairn: Cairn
) -> None:
    project = unique("typed")
    queue = context.new_page()
    queue.goto(f"{cairn.base}/queue?project={project}")
    expect(queue.locator("#live-status")).to_have_text("Live")
    page.goto(f"{cairn.base}/queue/new")
    page.fill("#f-instructions", "Add a health check")
    page.fill("#f-repository", "not a repository!")
    page.fill("#f-project", project)
    page.fill("#f-max_attempts", "99")
    page.click("button:has-text('Submit job')")
    expect(page.locator("#f-repository-error")).to_contain_text("owner/repo")
    expect(page.locator("#f-repository")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-instructions")).to_have_value("Add a health check")
    expect(page.locator("#f-max_attempts-error")).to_contain_text("50")
    with cairn.api() as api:
        assert api.get(f"/api/queue/jobs?project={project}").json()["items"] == []
    # Fixed: it is queued, and the open queue page shows it without a reload.
    page.fill("#f-repository", "acme/app")
    page.fill("#f-max_attempts", "2")
    page.select_option("#f-runtime", "claude")
    page.fill("#f-model", "a-model")
    page.fill("#f-skill", "review")
    page.select_option("#f-publish_mode", "none")
    started = time.monotonic()
    page.click("button:has-text('Submit job')")
    page.wait_for_url(re.compile(r".*/queue/job-.*"))
    expect(page.locator(".notice")).to_have_text("Submitted to the queue.")
    job_id = page.url.split("/queue/")[1].split("?")[0]
    expect(queue.locator(f"#job-{job_id}")).to_be_visible(timeout=5_000)
    assert time.monotonic() - started < 3
    with cairn.api() as api:
        job = api.get(f"/api/queue/jobs/{job_id}").json()
    task = job["normalized"]["task"]
    assert job["maxAttempts"] == 2 and job["normalized"]["targetRuntime"] == "claude"
    assert task["runtime"]["model"] == "a-model" and task["skill"]["id"] == "review"
    queue.close()


def test_the_steps_editor_adds_steps_and_edit_while_queued(page: Page, cairn: Cairn) -> None:
    project = unique("steps")
    page.goto(f"{cairn.base}/queue/new")
    page.fill("#f-instructions", "Plan, then do")
    page.fill("#f-project", project)
    page.fill("#f-steps-0-title", "Plan")
    page.fill("#f-steps-0-instructions", "Write the plan")
    page.click("button:has-text('Add a step')")
    expect(page.locator("#f-steps-1-title")).to_be_focused()
    page.fill("#f-steps-1-title", "Do")
    page.fill("#f-steps-1-instructions", "Do the plan")
    page.click("button:has-text('Submit job')")
    page.wait_for_url(re.compile(r".*/queue/job-.*"))
    job_id = page.url.split("/queue/")[1].split("?")[0]
    with cairn.api() as api:
        steps = api.get(f"/api/queue/jobs/{job_id}").json()["payload"]["task"]["steps"]
    assert [s["title"] for s in steps] == ["Plan", "Do"]
    # A job nobody can take stays queued: edit it.
    stuck = submit(cairn, project, "Edit me", requiredCapabilities=NOBODY)
    page.goto(f"{cairn.base}/queue/{stuck}")
    page.click("a:has-text('Edit while queued')")
    expect(page.locator("body")).to_contain_text("only its queue options")  # a field the form lacks
    page.fill("#f-priority", "7")
    page.click("button:has-text('Save changes')")
    expect(page.locator(".notice")).to_have_text("Saved.")
    # A typed job for a runtime no worker offers (universal) stays queued too: the whole form.
    plain = submit(cairn, project, "Typed edit", targetRuntime="universal")
    page.goto(f"{cairn.base}/queue/{plain}/edit")
    page.fill("#f-instructions", "Typed edit, changed")
    page.click("button:has-text('Save changes')")
    expect(page.locator(".notice")).to_have_text("Saved.")
    with cairn.api() as api:
        edited = api.get(f"/api/queue/jobs/{plain}").json()
    assert edited["payload"]["task"]["instructions"] == "Typed edit, changed"
    assert edited["normalized"]["targetRuntime"] == "universal"  # what the form held is kept
    with cairn.api() as api:
        assert api.get(f"/api/queue/jobs/{stuck}").json()["priority"] == 7


def test_a_quick_action_is_one_off_until_promoted(page: Page, cairn: Cairn) -> None:
    project = unique("quick")
    page.goto(f"{cairn.base}/queue/new")
    expect(page.locator("#quick-h")).to_contain_text("one-off")
    page.fill("#f-q-prompt", "Explain the flaky test")
    page.fill("#f-q-project", project)
    page.click("button:has-text('Start quick action')")
    page.wait_for_url(re.compile(r".*/queue/job-.*"))
    expect(page.locator("section[aria-labelledby=facts-h]")).to_contain_text("quick action")
    with cairn.api() as api:
        assert api.get(f"/api/v2/tasks/board?project={project}").json()["total"] == 0
    page.click("button:has-text('Promote to a board task')")
    page.wait_for_url(re.compile(r".*/tasks/task-.*"))
    expect(page.locator(".notice")).to_have_text("Promoted to a board task.")
    with cairn.api() as api:
        assert api.get(f"/api/v2/tasks/board?project={project}").json()["total"] == 1


def test_the_quick_action_refuses_a_blank_prompt_at_its_field(page: Page, cairn: Cairn) -> None:
    page.goto(f"{cairn.base}/queue/new")
    page.fill("#f-q-prompt", "  ")
    page.click("button:has-text('Start quick action')")
    expect(page.locator("#f-q-prompt-error")).to_be_visible()
    expect(page.locator("#f-q-prompt")).to_have_attribute("aria-invalid", "true")


def test_a_new_job_appears_on_an_open_queue_within_a_second(page: Page, cairn: Cairn) -> None:
    project = unique("livequeue")
    page.goto(f"{cairn.base}/queue?project={project}")
    expect(page.locator("#live-status")).to_have_text("Live")
    started = time.monotonic()
    job_id = submit(cairn, project, "Arrives live", requiredCapabilities=NOBODY)
    expect(page.locator(f"#job-{job_id}")).to_be_visible(timeout=5_000)
    assert time.monotonic() - started < 1.0
