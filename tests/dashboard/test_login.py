"""Signing in and out, the session cookie, and CSRF: a token in, a signed HttpOnly
SameSite=Strict cookie out; no token in a page or a URL; every post needs the session's CSRF
token; a refused post changes nothing."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.dashboard.conftest import TOKEN, Cairn, login, unique
from tests.dashboard.test_board import create


def test_a_page_asks_to_sign_in_and_returns_after(context: BrowserContext, cairn: Cairn) -> None:
    page = context.new_page()
    page.goto(cairn.base + "/queue?status=queued")
    assert "/login?next=" in page.url
    page.fill("#f-token", "not-a-token-of-this-install-0000000")
    page.click("button[type=submit]")
    expect(page.locator("#error-summary")).to_contain_text("not known")
    expect(page.locator("#f-token")).to_have_attribute("aria-invalid", "true")
    page.fill("#f-token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/queue\?status=queued$"))
    expect(page.locator("h1")).to_contain_text("Queue")


def test_the_cookie_is_signed_http_only_strict_and_holds_no_token(
    page: Page, context: BrowserContext, cairn: Cairn
) -> None:
    [cookie] = [c for c in context.cookies() if c["name"] == "cairn_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert TOKEN not in cookie["value"]
    assert page.evaluate("() => document.cookie") == ""  # nothing a script can read
    for path in ("/tasks", "/queue", "/queue/new", "/workers", "/telemetry", "/audit"):
        response = page.goto(cairn.base + path)
        assert response is not None and TOKEN not in response.text() and TOKEN not in page.url
    tampered = {**cookie, "value": cookie["value"][:-3] + "abc"}
    context.clear_cookies()
    context.add_cookies([tampered])  # type: ignore[list-item]
    page.goto(cairn.base + "/tasks")
    assert "/login" in page.url


def test_sign_out_ends_the_session_on_the_server(context: BrowserContext, cairn: Cairn) -> None:
    page = context.new_page()
    login(page, cairn)
    [cookie] = [c for c in context.cookies() if c["name"] == "cairn_session"]
    page.click("header form[action='/logout'] button")
    page.wait_for_url(re.compile(r".*/login.*"))
    expect(page.locator("body")).to_contain_text("Signed out")
    # The old cookie, replayed, no longer opens a page.
    context.add_cookies([cookie])  # type: ignore[list-item]
    page.goto(cairn.base + "/tasks")
    assert "/login" in page.url


def test_a_post_without_the_csrf_token_or_from_elsewhere_is_refused(
    page: Page, cairn: Cairn
) -> None:
    title = unique("forged")
    form: dict[str, str | float | bool] = {
        "title": title, "task_type": "chore", "priority": "1", "project": "default",
    }  # fmt: skip
    missing = page.request.post(cairn.base + "/tasks/new", form=form)
    forged = page.request.post(cairn.base + "/tasks/new", form={**form, "_csrf": "forged"})
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    elsewhere = page.request.post(
        cairn.base + "/tasks/new", form={**form, "_csrf": csrf},
        headers={"Origin": "https://evil.example"},
    )  # fmt: skip
    for response in (missing, forged, elsewhere):
        assert response.status == 403, response.status
        assert "CSRF" in response.text()
    with cairn.api() as api:
        listed = api.get("/api/v2/tasks?project=default&limit=500").json()["items"]
    assert title not in [t["title"] for t in listed]
    # The same form with the session's token is accepted.
    accepted = page.request.post(cairn.base + "/tasks/new", form={**form, "_csrf": csrf})
    assert accepted.ok and title in accepted.text()


def test_a_script_post_carries_the_token_in_a_header(page: Page, cairn: Cairn) -> None:
    status = page.evaluate(
        """async () => (await fetch('/tasks/new', {method: 'POST', headers: {
             'Accept': 'application/json'}, body: new URLSearchParams({title: 'x',
             task_type: 'chore', priority: '1'})})).status"""
    )
    assert status == 403


def test_an_unknown_id_is_a_real_404_page(page: Page, cairn: Cairn) -> None:
    unknown = ("/tasks/task-00-0000000000000000000000000a", "/tasks/not-an-id",
               "/queue/job-00-0000000000000000000000000a", "/queue/not-an-id")  # fmt: skip
    for path in unknown:
        response = page.goto(cairn.base + path)
        assert response is not None and response.status == 404, path
        expect(page.locator("h1")).to_have_text("Not found (404)")
        expect(page.locator("nav[aria-label=Main]")).to_be_visible()


def test_only_a_path_of_this_server_is_returned_to() -> None:
    from cairn.api.dashboard.render import safe_next

    assert safe_next("/queue?status=queued") == "/queue?status=queued"
    assert safe_next("https://evil.example/queue") == "/queue"  # its path here, never there
    for hostile in ("//evil.example", "/\\evil.example", "javascript:alert(1)", "evil", "", None):
        assert safe_next(hostile) == "/tasks", hostile


def test_a_session_acts_with_its_tokens_role(browser: Browser, cairn: Cairn) -> None:
    names = {role: unique(role) for role in ("viewer", "auditor", "operator")}
    tokens = {role: cairn.new_token(name, role) for role, name in names.items()}
    project = unique("roles")
    task = create(cairn, project, "Only operators move me")
    context = browser.new_context()
    page = context.new_page()
    try:
        login(page, cairn, tokens["viewer"])
        expect(page.locator("header")).to_contain_text("(viewer)")
        page.goto(f"{cairn.base}/tasks?project={project}")
        page.locator(f"#card-{task['id']} summary").click()
        page.locator(f"#card-{task['id']} button[value=ready]").click()
        refusal = page.locator(f"#card-{task['id']} .move-error")
        expect(refusal).to_contain_text("needs the operator role")
        with cairn.api() as api:
            assert api.get(f"/api/v2/tasks/{task['id']}").json()["status"] == "backlog"
        context.clear_cookies()
        page.goto(cairn.base + "/login")
        page.fill("#f-token", tokens["auditor"])
        page.click("button[type=submit]")
        page.wait_for_url("**/audit")  # an auditor reads the log, not the board
        response = page.goto(f"{cairn.base}/tasks")
        assert response is not None and response.status == 403
        expect(page.locator("main")).to_contain_text("needs the viewer role")
        context.clear_cookies()
        login(page, cairn, tokens["operator"])
        page.goto(f"{cairn.base}/workers")
        page.fill("#f-reason", "trying")
        page.click("button:has-text('Set mode')")
        expect(page.locator("main")).to_contain_text("needs the admin role")
        with cairn.api() as api:
            assert api.get("/api/queue/workers").json()["pause"] == "off"
        # Revoked, the token's sessions end at their next request.
        cairn.cli("token", "revoke", names["operator"])
        page.goto(f"{cairn.base}/queue")
        assert "/login" in page.url
    finally:
        context.close()
