"""The newcomer's first hour in Chromium, on a fresh `cairn up` whose worker runs the real,
pinned claude against the scripted model server: an empty board shows the first steps, a
project gets a local repository in its settings page, a task is created in the form and run,
its branch is on the remote with the agent's file, and the steps are ticked."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from cairn.streams.server import free_port
from tests.agents.clis import require_clis
from tests.agents.model_server import ModelServer, text, write
from tests.dashboard.conftest import Cairn, login, start_cairn, stop_cairn, unique, wait_until
from tests.worker.conftest import make_remote, run_git

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cairn, ModelServer]]:
    bin_dir = require_clis()
    model = ModelServer(default=[write("hello.txt", "hello from claude\n"),
                                 text("I added hello.txt.")])  # fmt: skip
    model.start()
    root = tmp_path_factory.mktemp("newcomer")
    running = start_cairn(
        root, free_port(), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        ANTHROPIC_BASE_URL=model.url, CAIRN_DEFAULT_REPOSITORY="",  # nothing preset
        CAIRN_DEFAULT_PUBLISH_MODE="branch", HOME=str(root / "home"),
    )  # fmt: skip
    yield running, model
    stop_cairn(running)
    model.stop()


def steps(page: Page) -> list[str]:
    return [li.get_attribute("class") or "" for li in page.locator(".checklist li").all()]


def test_a_newcomer_gets_from_an_empty_board_to_an_agents_branch(
    browser: Browser, newcomer: tuple[Cairn, ModelServer], tmp_path: Path
) -> None:
    cairn, _ = newcomer
    remote = make_remote(tmp_path / "git", "me/shop")
    page = browser.new_page()
    page.set_default_timeout(15_000)
    login(page, cairn)
    project = unique("shop")
    page.goto(f"{cairn.base}/tasks?project={project}")
    panel = page.locator("section.getting-started")
    expect(panel).to_contain_text("Getting started")
    # The worker offers claude (installed, signed in) once it has started; no project has a
    # repository; nothing ran.
    wait_until(lambda: page.reload() is not None and steps(page)[1] == "done", timeout=60,
               what="the worker's agent ticked")  # fmt: skip
    assert steps(page) == ["todo", "done", "todo"]

    page.click("nav a:has-text('Projects')")
    page.fill("#f-name", project)
    page.fill("#f-repository", str(remote.bare))
    page.select_option("#f-runtime", "claude")
    page.select_option("#f-publish_mode", "branch")
    page.click("button:has-text('Create project')")
    page.wait_for_url(f"**/projects/{project}*")
    expect(page.locator("#f-repository")).to_have_value(str(remote.bare))

    page.goto(f"{cairn.base}/tasks?project={project}")
    assert steps(page) == ["done", "done", "todo"]
    page.click("a:has-text('New task')")
    expect(page.locator("#f-repository + .help, #f-repository-help")).to_contain_text(
        str(remote.bare))  # the field says the project's repository
    page.fill("#f-title", "Add a hello file")
    page.fill("#f-description", "Create hello.txt that says hello.")
    page.click("button:has-text('Create task')")
    card = page.locator(".card", has_text="Add a hello file")
    card.locator("button:has-text('Run now')").click()
    last = card.locator(".sub:has-text('Last run') .badge")
    expect(last).to_have_text("succeeded", timeout=180_000)

    branches = [b for b in remote.branches() if b.startswith("cairn/")]
    assert len(branches) == 1, remote.branches()
    shown = run_git("--git-dir", str(remote.bare), "show", f"{branches[0]}:hello.txt")
    assert shown == "hello from claude\n"

    page.goto(f"{cairn.base}/tasks?project={unique('next')}")  # an empty board again
    assert steps(page) == ["done", "done", "done"]
    page.close()
