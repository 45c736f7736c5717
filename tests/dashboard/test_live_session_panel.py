"""A running job's terminal in the dashboard, on a `cairn up` of its own whose worker serves live
sessions (CAIRN_LIVE_SESSIONS) and whose stand-in agent prints a line a second until a file
named FIXED shows up in its checkout. In Chromium: an operator watches it in xterm.js; an
operator with the takeover grant takes it over, types `touch FIXED && echo ok` in the shell,
sees `ok` (so does the watcher), reloads and is attached again, and hands it back with a note;
the job finishes, and its page lists both sessions with their recordings, one replayed in the
same terminal. A viewer gets no button, an operator without the grant no takeover. No
Content-Security-Policy violation on the way (xterm.js draws with its canvas renderer)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from cairn.streams.server import free_port
from tests.dashboard.conftest import (
    DESKTOP,
    PHONE,
    Cairn,
    login,
    run_axe,
    start_cairn,
    stop_cairn,
    unique,
    wait_until,
)

SCREENSHOT = Path("/tmp/live-session-panel.png")
REPLAY_SHOT = Path("/tmp/live-session-replay.png")
AGENT = """#!/bin/sh
[ "$1" = "--version" ] && { echo "fake 0.0.0"; exit 0; }
i=0
while [ ! -f FIXED ]; do
  i=$((i+1)); echo "agent line $i"; sleep 1
  [ $i -gt 300 ] && exit 3
done
echo "saw FIXED"
"""
# Every Content-Security-Policy violation the page meets, kept where the test can read it.
CSP_WATCH = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""
WIDER = """(width) => [document.getElementById("live"), ...document.querySelectorAll("#live *")]
  .filter((e) => e.getBoundingClientRect().right > width && !e.parentElement.closest(".table-wrap"))
  .map((e) => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)
"""  # what of the panel reaches past a phone's window (a wide table scrolls in its own box)
ROWS = "#live-term .xterm-accessibility-tree"  # the terminal's rows, as a screen reader reads them


@dataclass
class Live:
    cairn: Cairn
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("live")
    agent = root / "agent" / "claude"
    agent.parent.mkdir()
    agent.write_text(AGENT)
    agent.chmod(0o755)
    home = root / "cairn"
    path = f"{agent.parent}:{home / 'bin'}:{os.environ['PATH']}"
    cairn = start_cairn(home, free_port(), PATH=path, CAIRN_LIVE_SESSIONS="true",
                        CAIRN_LIVE_SESSION_IDLE_S="120")  # fmt: skip
    try:
        tokens = {name: cairn.new_token(name, role)
                  for name, role in (("ann", "operator"), ("vera", "viewer"))}  # fmt: skip
        made = cairn.cli("token", "create", "--name", "tess", "--role", "operator",
                         "--grant", "takeover")  # fmt: skip
        found = re.search(r"cairn_\S+", made)
        assert found, made
        tokens["tess"] = found[0]
        yield Live(cairn, tokens)
    finally:
        stop_cairn(cairn)


@pytest.fixture
def sign_in(browser: Browser, live: Live) -> Iterator[Callable[[str], Page]]:
    """A page signed in as one of the tokens, in a browser context of its own; a script error
    or a CSP violation on any of them fails the test."""
    opened: list[tuple[str, Page, BrowserContext]] = []
    errors: list[str] = []

    def open_as(name: str) -> Page:
        context = browser.new_context(viewport=DESKTOP)
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.add_init_script(CSP_WATCH)
        page.on("pageerror", lambda error: errors.append(f"{name}: {error}"))
        login(page, live.cairn, live.tokens[name])
        opened.append((name, page, context))
        return page

    yield open_as
    for name, page, context in opened:
        if not page.is_closed():
            found = page.evaluate("() => window.cspViolations || []")
            errors += [f"{name}: CSP {v}" for v in found]
        context.close()
    assert errors == [], errors


def running_job(cairn: Cairn) -> str:
    """A job whose agent step is running (printing a line a second)."""
    body = {"type": "task", "project": unique("live"), "payload": {
        "repository": cairn.repository, "targetRuntime": "claude",
        "task": {"instructions": "wait for FIXED"}}}  # fmt: skip
    with cairn.api() as api:
        made = api.post("/api/queue/jobs", json=body)
        assert made.status_code == 201, made.text
        job_id = str(made.json()["id"])

        def step_running() -> bool:
            steps = api.get(f"/api/queue/jobs/{job_id}").json()["steps"]
            return bool(steps) and steps[-1]["status"] == "running"

        wait_until(step_running, timeout=90, what="the agent's step running")
    return job_id


def rows(page: Page) -> str:
    """What the terminal shows, row by row."""
    return str(page.evaluate(f"""() => [...document.querySelectorAll("{ROWS} > div")]
                                       .map((row) => row.textContent.trimEnd()).join("\\n")"""))


def shows(page: Page, pattern: str, timeout: float = 15) -> None:
    wait_until(lambda: re.search(pattern, rows(page), re.M) is not None, timeout,
               f"{pattern!r} on the terminal of {page.url}")  # fmt: skip


def opening(page: Page, mode: str, csrf: bool = True) -> tuple[int, str]:
    """A session opened by a post from the page's script, as crafted: its status and code."""
    token = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    headers = {"Accept": "application/json", **({"X-CSRF-Token": token} if csrf else {})}
    reply = page.request.post(f"{page.url.split('?')[0]}/live-sessions", form={"mode": mode},
                              headers=headers)  # fmt: skip
    return reply.status, str(reply.json().get("code", ""))


@pytest.mark.timeout(300)
def test_watch_take_over_type_and_hand_back(live: Live, sign_in: Callable[[str], Page]) -> None:
    job_id = running_job(live.cairn)
    url = f"{live.cairn.base}/queue/{job_id}"

    # A viewer sees who is here but gets neither button.
    vera = sign_in("vera")
    vera.goto(url)
    expect(vera.locator("#live")).to_be_visible()
    expect(vera.locator("[data-live-open]")).to_have_count(0)
    expect(vera.locator("#live")).to_contain_text("Watching needs the operator role")

    # An operator watches: the agent's lines come into the terminal as it prints them.
    ann = sign_in("ann")
    ann.goto(url)
    expect(ann.locator("[data-live-open=takeover]")).to_have_count(0)  # no takeover grant
    # Crafted posts are refused as the API refuses them: no CSRF token, a viewer, no grant.
    assert opening(ann, "watch", csrf=False) == (403, "csrf_refused")
    assert opening(vera, "watch") == (403, "forbidden")
    assert opening(ann, "takeover") == (403, "not_allowed")
    ann.click("[data-live-open=watch]")
    expect(ann.locator("#live-mode")).to_have_text("Watching")
    expect(ann.locator("#live-state")).to_have_text("Live")
    shows(ann, r"^agent line \d+$")
    seen = int(re.findall(r"agent line (\d+)", rows(ann))[-1])
    shows(ann, rf"^agent line {seen + 1}$", timeout=5)
    expect(ann.locator("#live-left")).to_have_text(re.compile(r"^\d+:\d\d left$"))

    # An operator with the takeover grant takes it over and types in the shell.
    tess = sign_in("tess")
    tess.goto(url)
    tess.click("[data-live-open=takeover]")
    expect(tess.locator("#live-mode")).to_have_text("Taken over: you type")
    expect(tess.locator("#live-state")).to_have_text("Live")
    shows(tess, r"takeover\$")  # the shell's prompt
    expect(tess.locator("#live-others")).to_contain_text("ann (watching)")
    expect(ann.locator("#takeover-badge")).to_have_text("paused (takeover)")  # the page follows
    expect(ann.locator("#live-others")).to_contain_text("tess (taking over)")
    tess.click("#live-term")
    tess.keyboard.type("touch FIXED && echo ok")
    tess.keyboard.press("Enter")
    shows(tess, r"^ok$")
    shows(ann, r"^ok$")  # a watcher sees the shell too
    tess.screenshot(path=str(SCREENSHOT), full_page=False)
    assert run_axe(tess) == []

    # A reload attaches again to the open takeover, with a new ticket.
    tess.reload()
    expect(tess.locator("#live-mode")).to_have_text("Taken over: you type")
    expect(tess.locator("#live-state")).to_have_text("Live")
    shows(tess, r"^ok$")  # the session's frames so far, again

    # Hand back with a note: the session ends, the agent sees FIXED and the job finishes.
    tess.fill("#live-note", "made FIXED so it can go on")
    tess.click("#live-hand-back button[type=submit]")
    expect(tess.locator("#live-state")).to_have_text("Ended: handed back", timeout=20_000)
    expect(tess.locator("#live-hand-back")).to_be_hidden()
    shows(ann, r"saw FIXED", timeout=30)
    expect(ann.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
    expect(ann.locator("#live-state")).to_have_text(re.compile(r"^Ended: the job ended"),
                                                    timeout=20_000)  # fmt: skip

    # The finished job lists each session with its recording; one replays in the terminal.
    with live.cairn.api() as api:
        told = api.get(f"/api/queue/jobs/{job_id}").json()["operatorMessages"]
    messages = [m["text"] for m in told]
    assert any("made FIXED so it can go on" in m for m in messages), messages
    vera.goto(url)
    sessions = vera.locator("#live-sessions tbody tr")
    expect(sessions).to_have_count(2)
    taken = sessions.filter(has_text="tess")
    expect(taken).to_contain_text("takeover")
    expect(taken).to_contain_text("handed back")
    expect(taken).to_contain_text("Note: made FIXED so it can go on")
    expect(sessions.filter(has_text="ann")).to_contain_text("the job ended")
    taken.locator("[data-live-replay]").click()
    expect(vera.locator("#live-mode")).to_have_text("Replay: takeover by tess")
    vera.select_option("#live-speed", "0")
    shows(vera, r"^ok$", timeout=20)
    expect(vera.locator("#live-state")).to_have_text("Replayed to its end", timeout=20_000)
    vera.locator("#live").screenshot(path=str(REPLAY_SHOT))
    assert run_axe(vera) == []
    vera.emulate_media(color_scheme="dark")
    assert run_axe(vera) == []
    vera.set_viewport_size(PHONE)  # the panel and its terminal fit a phone
    try:
        wait_until(lambda: vera.evaluate(WIDER, PHONE["width"]) == [], what="the panel narrow")
    except AssertionError as e:
        raise AssertionError(f"wider than a phone: {vera.evaluate(WIDER, PHONE['width'])}") from e
