"""The board: a column per state, cards with what a team needs at a glance, moves by drag and
drop and by a keyboard "Move to" menu, a refused move's reason and what is allowed, blocked
tasks with their way out (the blockers, or a retry), Run now, the project switcher, and live
updates."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import Cairn, unique, wait_until

# A run of a task with this spec needs a runtime no worker offers: the scheduler queues it,
# nobody claims it, and the task stays where the test put it.
IDLE = {"targetRuntime": "universal", "task": {"instructions": "wait"}}


def create(cairn: Cairn, project: str, title: str, **fields: Any) -> dict[str, Any]:
    body = {"title": title, "task_type": "feature", "priority": 1, "project": project, **fields}
    with cairn.api() as api:
        made = api.post("/api/v2/tasks", json=body)
        assert made.status_code == 201, made.text
        task: dict[str, Any] = made.json()
        return task


def card(page: Page, task_id: str) -> Any:
    return page.locator(f"#card-{task_id}")


def test_keyboard_only_create_a_task_and_move_it_to_ready(page: Page, cairn: Cairn) -> None:
    project = unique("keys")
    page.goto(f"{cairn.base}/tasks?project={project}")
    page.keyboard.press("n")  # New task
    page.wait_for_url(f"**/tasks/new?project={project}")
    title = unique("Typed without a mouse ")
    # The title field has the focus (autofocus) once the page is up: typing before that loses
    # the first keys, as it would for a person.
    expect(page.locator("input[name=title]")).to_be_focused()
    page.keyboard.type(title)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/tasks?project={project}*")
    new = page.locator(".card", has_text=title)
    expect(new).to_be_focused()  # the new card takes the focus
    expect(page.locator("#col-backlog")).to_contain_text(title)
    page.keyboard.press("m")  # its Move to menu opens on its first target (ready)
    expect(page.locator(".card:focus-within details.move[open]")).to_have_count(1)
    expect(page.locator(":focus")).to_have_text("ready")
    page.keyboard.press("Enter")
    expect(page.locator("#col-backlog")).not_to_contain_text(title)
    moved = page.locator(".card", has_text=title)
    expect(moved).to_be_focused()  # the moved card keeps the focus
    # (A ready task is run by the scheduler, so it may be in progress already.)
    expect(moved).to_have_attribute("data-status", re.compile("ready|in_progress|in_review"))
    page.keyboard.press("Enter")  # opens the focused card
    page.wait_for_url("**/tasks/task-*")
    expect(page.locator("h1")).to_have_text(title)


def test_drag_and_drop_moves_a_card_and_a_refused_move_says_why(page: Page, cairn: Cairn) -> None:
    project = unique("drag")
    task = create(cairn, project, "Drag me", spec=IDLE)
    page.goto(f"{cairn.base}/tasks?project={project}")
    card(page, task["id"]).drag_to(page.locator("#col-ready"))
    expect(page.locator("#col-ready")).to_contain_text("Drag me")
    expect(card(page, task["id"])).to_be_focused()  # the move is done: the board refreshed
    # ready -> done is not in the table: the server's reason and the allowed moves show at
    # the card, and nothing moved.
    card(page, task["id"]).drag_to(page.locator("#col-done"))
    error = card(page, task["id"]).locator(".move-error")
    expect(error).to_contain_text("cannot move to 'done'")
    expect(error).to_contain_text("Allowed: in progress, blocked, backlog, cancelled")
    expect(page.locator("#col-ready")).to_contain_text("Drag me")
    with cairn.api() as api:
        assert api.get(f"/api/v2/tasks/{task['id']}").json()["status"] == "ready"


def test_the_move_menu_works_without_scripts(browser: Any, cairn: Cairn) -> None:
    from tests.dashboard.conftest import login

    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        login(page, cairn)
        project = unique("plain")
        task = create(cairn, project, "No scripts here", spec=IDLE)
        page.goto(f"{cairn.base}/tasks?project={project}")
        menu = card(page, task["id"]).locator("details.move")
        menu.locator("summary").click()
        menu.locator("button[value=ready]").click()
        expect(page.locator("#col-ready")).to_contain_text("No scripts here")
        expect(page.locator(".notice")).to_have_text("Moved.")
        menu = card(page, task["id"]).locator("details.move")
        menu.locator("summary").click()
        menu.locator("button[value=backlog]").click()
        expect(page.locator("#col-backlog")).to_contain_text("No scripts here")
        # A refused move comes back as the board with the reason at the card: an open blocker
        # keeps the task out of ready.
        blocker = create(cairn, project, "Still open")
        with cairn.api() as api:
            added = api.post(f"/api/v2/tasks/{task['id']}/dependencies",
                             json={"blocked_by": blocker["id"]})  # fmt: skip
            assert added.status_code == 200, added.text
        page.goto(f"{cairn.base}/tasks?project={project}")
        menu = card(page, task["id"]).locator("details.move")
        menu.locator("summary").click()
        menu.locator("button[value=ready]").click()
        expect(card(page, task["id"]).locator(".move-error")).to_contain_text("ready")
        expect(page.locator("#col-backlog")).to_contain_text("No scripts here")
    finally:
        context.close()


def test_a_blocked_task_shows_why_and_the_way_out(page: Page, cairn: Cairn) -> None:
    project = unique("blocked")
    blocker = create(cairn, project, "The blocker")
    waiting = create(cairn, project, "The waiting one", status="ready", spec=IDLE)
    with cairn.api() as api:
        added = api.post(f"/api/v2/tasks/{waiting['id']}/dependencies",
                         json={"blocked_by": blocker["id"]})  # fmt: skip
        assert added.status_code == 200, added.text
    page.goto(f"{cairn.base}/tasks?project={project}")
    blocked = card(page, waiting["id"])
    expect(page.locator("#col-blocked")).to_contain_text("The waiting one")
    expect(blocked.locator(".why")).to_contain_text("waiting on dependencies")
    expect(blocked.locator(".why a", has_text="The blocker")).to_have_attribute(
        "href", f"/tasks/{blocker['id']}"
    )
    expect(blocked.locator(".why")).to_contain_text("Way out: finish or cancel")
    expect(blocked.locator("button", has_text="Retry")).to_have_count(0)
    # The blocker is cancelled: the waiting task is released to ready by itself.
    card(page, blocker["id"]).locator("summary").click()
    card(page, blocker["id"]).locator("button[value=cancelled]").click()
    expect(page.locator("#col-cancelled")).to_contain_text("The blocker")
    expect(page.locator("#col-ready")).to_contain_text("The waiting one")
    # Blocked by hand, with a reason: the way out is to retry once it is resolved.
    with cairn.api() as api:
        why = {"to": "blocked", "reason": "Waiting for the vendor's answer"}
        moved = api.post(f"/api/v2/tasks/{waiting['id']}/transition", json=why)
        assert moved.status_code == 200, moved.text
    expect(blocked.locator(".why")).to_contain_text("manual: Waiting for the vendor's answer")
    expect(blocked.locator(".why")).to_contain_text("Way out: resolve the reason")
    blocked.locator("button", has_text="Retry").click()
    expect(page.locator("#col-ready")).to_contain_text("The waiting one")


def test_run_now_queues_a_run_shown_on_the_card(page: Page, cairn: Cairn) -> None:
    project = unique("run")
    task = create(cairn, project, "Run me now", description="Say hello")
    page.goto(f"{cairn.base}/tasks?project={project}")
    card(page, task["id"]).locator("button", has_text="Run now").click()
    expect(page.locator(".notice")).to_have_text("Run queued.")
    with cairn.api() as api:
        wait_until(lambda: bool(api.get(f"/api/v2/tasks/{task['id']}").json()["run_ids"]))
        job_id = api.get(f"/api/v2/tasks/{task['id']}").json()["run_ids"][0]
    expect(card(page, task["id"]).locator(f"a[href='/queue/{job_id}']").first).to_be_visible()


def test_the_project_switcher_and_card_facts(page: Page, cairn: Cairn) -> None:
    first, second = unique("alpha"), unique("beta")
    blocker = create(cairn, first, "Base work")
    create(cairn, first, "Labelled", priority=3, task_type="bug_fix", labels=["ui", "urgent"],
           assignee="sam", blocked_by=[blocker["id"]])  # fmt: skip
    create(cairn, second, "Other board")
    page.goto(f"{cairn.base}/tasks?project={first}")
    labelled = page.locator(".card", has_text="Labelled")
    for text in ("critical", "bug_fix", "ui", "urgent", "@sam", "Blocked by Base work"):
        expect(labelled).to_contain_text(text)
    page.select_option("#project-switch", second)  # submits by itself
    page.wait_for_url(f"**/tasks?project={second}")
    expect(page.locator("#board")).to_contain_text("Other board")
    expect(page.locator("#board")).not_to_contain_text("Labelled")


def test_a_new_task_appears_on_an_open_board_within_a_second(page: Page, cairn: Cairn) -> None:
    project = unique("live")
    page.goto(f"{cairn.base}/tasks?project={project}")
    expect(page.locator("#live-status")).to_have_text("Live")
    started = time.monotonic()
    create(cairn, project, "Pushed live")
    expect(page.locator("#col-backlog")).to_contain_text("Pushed live", timeout=5_000)
    assert time.monotonic() - started < 1.0
