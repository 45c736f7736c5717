"""Every page in Chromium with axe-core: no serious or critical violation, in light and dark
mode, at desktop and phone width; nothing wider than a 390 px phone; and the first page
weighs under 200 KB compressed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.dashboard.conftest import (
    DESKTOP,
    PHONE,
    Cairn,
    compressed_size,
    login,
    run_axe,
    unique,
)
from tests.dashboard.test_board import create
from tests.dashboard.test_queue import NOBODY, submit


@pytest.fixture(scope="module")
def seeded(cairn: Cairn) -> dict[str, str]:
    """A project with a task in several states, a blocked one, a queued and a finished job."""
    project = unique("a11y")
    blocker = create(cairn, project, "Design the schema", labels=["db"], priority=2)
    waiting = create(cairn, project, "Write the migration", status="ready")
    with cairn.api() as api:
        api.post(f"/api/v2/tasks/{waiting['id']}/dependencies",
                 json={"blocked_by": blocker["id"]})  # fmt: skip
        api.patch(f"/api/v2/tasks/{blocker['id']}", json={"description": "Tables and keys."})
    create(cairn, project, "Retire the old endpoint", task_type="chore", priority=0)
    queued = submit(cairn, project, "Profile the slow query", requiredCapabilities=NOBODY)
    return {"project": project, "task": blocker["id"], "job": queued}


def pages(seeded: dict[str, str]) -> list[str]:
    task, job, project = seeded["task"], seeded["job"], seeded["project"]
    return [
        f"/tasks?project={project}", f"/tasks/new?project={project}", f"/tasks/{task}",
        f"/tasks/{task}/history", f"/queue?project={project}", "/queue/new", f"/queue/{job}",
        f"/queue/{job}/edit", "/workers", "/telemetry", "/audit", "/orchestrator",
        "/orchestrator/new", "/orchestrator/services",
        "/tasks/task-00-0000000000000000000000000a",
    ]  # fmt: skip


@pytest.fixture(params=[("desktop", "light"), ("desktop", "dark"), ("phone", "dark")],
                ids=lambda p: "-".join(p))  # fmt: skip
def styled(request: pytest.FixtureRequest, browser: Browser, cairn: Cairn) -> Iterator[Page]:
    size, scheme = request.param
    context = browser.new_context(
        viewport=DESKTOP if size == "desktop" else PHONE,
        color_scheme=scheme, is_mobile=size == "phone", has_touch=size == "phone",
    )  # fmt: skip
    page = context.new_page()
    login(page, cairn)
    yield page
    context.close()


@pytest.mark.timeout(240)
def test_no_serious_or_critical_violation_on_any_page(
    styled: Page, cairn: Cairn, seeded: dict[str, str]
) -> None:
    found: dict[str, Any] = {}
    for path in pages(seeded):
        styled.goto(cairn.base + path)
        violations = run_axe(styled)
        if violations:
            found[path] = violations
        width = styled.evaluate("() => document.documentElement.scrollWidth")
        viewport = styled.viewport_size or DESKTOP
        if width > viewport["width"]:
            found[path + " (width)"] = f"{width}px wide in a {viewport['width']}px window"
    # The forms with their errors shown are checked too.
    styled.goto(f"{cairn.base}/tasks/new")
    styled.click("button:has-text('Create task')")
    violations = run_axe(styled)
    if violations:
        found["/tasks/new (refused)"] = violations
    styled.goto(f"{cairn.base}/queue/new")
    styled.fill("#f-repository", "not a repository!")
    styled.click("button:has-text('Submit job')")
    violations = run_axe(styled)
    if violations:
        found["/queue/new (refused)"] = violations
    styled.keyboard.press("?")
    violations = run_axe(styled)
    if violations:
        found["help sheet"] = violations
    assert found == {}


def test_the_login_page_passes_too(browser: Browser, cairn: Cairn) -> None:
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport=PHONE, color_scheme=scheme)
        page = context.new_page()
        page.goto(cairn.base + "/login")
        assert run_axe(page) == []
        context.close()


def test_the_first_page_weighs_under_200_kb_compressed(
    browser: Browser, cairn: Cairn, seeded: dict[str, str]
) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    login(page, cairn)
    sizes: dict[str, int] = {}

    def record(response: Any) -> None:
        if response.url.startswith(cairn.base) and "/live" not in response.url:
            try:
                sizes[response.url] = compressed_size(response.body())
            except Exception:  # a redirect has no body
                sizes.setdefault(response.url, 0)

    page.on("response", record)
    page.goto(f"{cairn.base}/tasks?project={seeded['project']}")
    page.wait_for_timeout(500)
    context.close()
    total = sum(sizes.values())
    assert any("/static/app.js" in url for url in sizes) and total < 200_000, sizes
