"""A task's pages: the create form refuses bad values at their fields and creates nothing; the
detail page edits fields, adds and removes dependencies (a cycle refused with its path), and
moves; the history page lists every event and replays the state after any of them."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import Cairn, unique
from tests.dashboard.test_board import create


def test_the_create_form_refuses_bad_values_at_their_fields(page: Page, cairn: Cairn) -> None:
    project = unique("form")
    page.goto(f"{cairn.base}/tasks/new?project={project}")
    page.fill("#f-title", "   ")
    page.fill("#f-labels", "ok, not/a/label")
    page.fill("#f-blocked_by_ids", "task-99-nope")
    page.click("button:has-text('Create task')")
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#f-title-error")).to_contain_text("at least 1 character")
    expect(page.locator("#f-title")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-labels-error")).to_be_visible()
    expect(page.locator("#f-labels")).to_have_value("ok, not/a/label")  # kept as typed
    with cairn.api() as api:
        assert api.get(f"/api/v2/tasks/board?project={project}").json()["total"] == 0
    # Fixed, it is created with every field.
    blocker = create(cairn, project, "Prerequisite")
    page.goto(f"{cairn.base}/tasks/new?project={project}")
    page.fill("#f-title", "Complete form")
    page.select_option("#f-task_type", "bug_fix")
    page.select_option("#f-priority", "2")
    page.fill("#f-description", "Why and what.")
    page.fill("#f-acceptance_criteria", "It works\nIt is tested")
    page.fill("#f-context_files", "api/app.py")
    page.select_option("#f-blocked_by", [blocker["id"]])
    page.fill("#f-labels", "api, backend")
    page.fill("#f-assignee", "robin")
    page.click("button:has-text('Create task')")
    expect(page.locator(".notice")).to_have_text("Created.")
    new = page.locator(".card", has_text="Complete form")
    expect(new).to_contain_text("Blocked by Prerequisite")
    new.locator("h3 a").click()
    facts = page.locator("main")
    for text in ("bug_fix", "high (2)", "robin", "It is tested", "api/app.py", "backend"):
        expect(facts).to_contain_text(text)


def test_edit_dependencies_and_a_refused_cycle_with_its_path(page: Page, cairn: Cairn) -> None:
    project = unique("deps")
    first = create(cairn, project, "First")
    second = create(cairn, project, "Second", blocked_by=[first["id"]])
    page.goto(f"{cairn.base}/tasks/{first['id']}")
    # Edit
    page.fill("#f-title", "First, renamed")
    page.fill("#f-labels", "renamed")
    page.click("button:has-text('Save')")
    expect(page.locator(".notice")).to_have_text("Saved.")
    expect(page.locator("h1")).to_have_text("First, renamed")
    # first blocked by second would close second -> first -> second.
    page.select_option("#f-blocked_by", second["id"])
    page.click("button:has-text('Add dependency')")
    summary = page.locator("#error-summary")
    expect(summary).to_contain_text("would close a cycle")
    expect(summary.locator(f"a[href='/tasks/{second['id']}']").first).to_be_visible()
    expect(summary).to_contain_text("→")
    # Removing and adding an edge from the other side.
    page.goto(f"{cairn.base}/tasks/{second['id']}")
    page.click("button:has-text('Remove')")
    expect(page.locator(".notice")).to_have_text("Dependency removed.")
    expect(page.locator("#deps-h + ul")).to_have_count(0)
    page.fill("#f-blocked_by_id", first["id"])
    page.click("button:has-text('Add dependency')")
    expect(page.locator(".notice")).to_have_text("Dependency added.")
    expect(page.locator("section[aria-labelledby=deps-h]")).to_contain_text("First, renamed")


def test_a_refused_move_on_the_task_page_names_what_is_allowed(page: Page, cairn: Cairn) -> None:
    project = unique("move")
    blocker = create(cairn, project, "Must finish first")
    task = create(cairn, project, "Waits", blocked_by=[blocker["id"]])
    page.goto(f"{cairn.base}/tasks/{task['id']}")
    # Nothing is chosen for the person: the first target (blocked, once) is not preselected.
    expect(page.locator("#move-to option:checked")).to_have_text("Choose…")
    page.select_option("#move-to", "ready")
    page.click("form[action$='/move'] button:has-text('Move')")
    summary = page.locator("#error-summary")
    expect(summary).to_contain_text("cannot enter ready")
    expect(summary).to_contain_text("'Must finish first' is backlog")  # its title, not its id
    # Forced, it moves (and says so).
    page.select_option("#move-to", "ready")
    page.check("#move-force")
    page.click("form[action$='/move'] button:has-text('Move')")
    expect(page.locator("section[aria-labelledby=facts-h]")).to_contain_text("forced")


def test_the_history_replays_the_state_after_any_event(page: Page, cairn: Cairn) -> None:
    project = unique("history")
    task = create(cairn, project, "Has a past")
    with cairn.api() as api:
        api.patch(f"/api/v2/tasks/{task['id']}", json={"title": "Has a longer past"})
        api.post(f"/api/v2/tasks/{task['id']}/transition", json={"to": "cancelled"})
    page.goto(f"{cairn.base}/tasks/{task['id']}")
    page.get_by_role("link", name="History", exact=True).click()
    rows = page.locator("section[aria-labelledby=events-h] tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("task.created")
    expect(rows.nth(2)).to_contain_text("task.transitioned")
    expect(page.locator("#state + form + dl")).to_contain_text("Cancelled")
    rows.nth(0).locator("a").click()  # the state after version 1
    expect(page.locator("#state")).to_have_text("State after version 1")
    facts = page.locator("#state + form + dl")
    expect(facts).to_contain_text("Backlog")
    expect(facts).to_contain_text("Has a past")
    expect(facts).not_to_contain_text("longer")
