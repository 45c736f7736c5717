"""Orchestrator runs in the dashboard, on a `cairn up` of their own (its worker trusted with the
operator's commands, four eyes on) and a real service (tests/engine/orchestrator_helpers.py):
a run submitted from the form plans, shows its diff live and waits; its submitter may not
approve it (the page says why, and refuses a crafted approval with that reason), a viewer
sees no button, another operator approves it and the page follows it to succeeded. Rejecting
needs a reason; cancelling ends a waiting run. The list and the catalog show the runs and
the service's last verify."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from cairn.streams.server import free_port
from tests.dashboard.conftest import DESKTOP, Cairn, login, run_axe, start_cairn, stop_cairn
from tests.engine.orchestrator_helpers import Service, seed_service, write_agent

SLOW = 90_000  # ms: a plan, or an apply with its restart and verify, on a busy machine
SCREENSHOT = Path("/tmp/orchestrator-run.png")


@dataclass
class Orchestrated:
    cairn: Cairn
    service: Service
    tokens: dict[str, str]

    def plan_does(self, action: str) -> None:
        """What the stand-in agent's patch step runs in the checkout next."""
        (self.service.shared / "action").write_text(action)

    def submit(self, who: str, instruction: str) -> str:
        """A run submitted through the API by `who` (the form is tested once)."""
        with self.cairn.api() as api:
            api.headers["Authorization"] = f"Bearer {self.tokens[who]}"
            reply = api.post("/api/orchestrator/runs", json={
                "service": "billing", "instruction": instruction, "runtime": "claude"})  # fmt: skip
            assert reply.status_code in (201, 202), reply.text
            return str(reply.json()["id"])


@pytest.fixture(scope="module")
def orchestrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrated]:
    root = tmp_path_factory.mktemp("orchestrator")
    shared = root / "shared"  # what the agent's steps and the test share (the pid file too)
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    write_agent(root / "agent" / "claude", shared)
    service = Service(shared, root, seed_service(root / "service"))
    home = root / "cairn"
    cairn = start_cairn(
        home, free_port(), PATH=f"{root / 'agent'}:{home / 'bin'}:{os.environ['PATH']}",
        CAIRN_ORCHESTRATOR_WORKER="true", CAIRN_ORCHESTRATOR_FOUR_EYES="true",
        CAIRN_SANDBOX_SHARED=str(shared), CAIRN_GIT_AUTHOR_NAME="Cairn Test",
        CAIRN_GIT_AUTHOR_EMAIL="cairn@test",
    )  # fmt: skip
    try:
        service.start()
        with cairn.api() as api:
            reply = api.post("/api/orchestrator/services", json=service.spec(protected=True))
            assert reply.status_code == 201, reply.text
        tokens = {name: cairn.new_token(name, role)
                  for name, role in (("ann", "operator"), ("bob", "operator"),
                                     ("vera", "viewer"))}  # fmt: skip
        yield Orchestrated(cairn, service, tokens)
    finally:
        service.stop()
        stop_cairn(cairn)


@pytest.fixture
def sign_in(browser: Browser, orchestrated: Orchestrated) -> Iterator[Callable[[str], Page]]:
    """A page signed in as one of the tokens, in a browser context of its own; a script error
    on any of them fails the test."""
    opened: list[BrowserContext] = []
    errors: list[str] = []

    def open_as(name: str) -> Page:
        context = browser.new_context(viewport=DESKTOP)
        context.set_default_timeout(10_000)
        opened.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{name}: {error}"))
        login(page, orchestrated.cairn, orchestrated.tokens[name])
        return page

    yield open_as
    for context in opened:
        context.close()
    assert errors == [], errors


def run_id_of(page: Page) -> str:
    found = re.search(r"/orchestrator/(orun-[^/?#]+)", page.url)
    assert found, page.url
    return found[1]


def fact(page: Page, term: str, within: str = "[data-region=facts]") -> Locator:
    """What a facts list says for `term`."""
    return page.locator(f"{within} dt:text-is('{term}') + dd")


@pytest.mark.timeout(300)
def test_a_run_from_the_form_is_approved_by_another_operator_and_succeeds(
    orchestrated: Orchestrated, sign_in: Callable[[str], Page]
) -> None:
    base, service = orchestrated.cairn.base, orchestrated.service
    assert service.health() == 500  # the bad deploy
    orchestrated.plan_does("echo ok > app/config.txt")
    ann = sign_in("ann")
    ann.click("nav a:has-text('Orchestrator')")
    ann.click("a:has-text('New run')")
    ann.select_option("#f-service", "billing")
    instruction = "The health check fails since the last deploy <b>now</b>"
    ann.fill("#f-instruction", instruction)
    ann.select_option("#f-runtime", "claude")
    ann.click("button:has-text('Submit run')")
    ann.wait_for_url(re.compile(r".*/orchestrator/orun-.*"))
    expect(ann.locator(".notice")).to_contain_text("Run submitted")
    run_id = run_id_of(ann)
    expect(ann.locator("h1")).to_have_text(instruction)  # escaped, not markup

    # The page follows the plan live: the diff and the approval panel come without a reload.
    expect(ann.locator("#run-state")).to_have_text("awaiting approval", timeout=SLOW)
    expect(ann.locator("#diff .add")).to_have_text(["+ok"])
    expect(ann.locator("#diff .del")).to_have_text(["-broken"])
    expect(ann.locator("#plan")).to_contain_text("Plan: set app/config.txt to ok")  # plan.md
    # Four eyes: the submitter gets no approve button, and a crafted approval is refused with
    # its reason on the page.
    expect(ann.locator("#approve")).to_have_count(0)
    expect(ann.locator("#approval")).to_contain_text("you submitted this run")
    with ann.expect_response(re.compile(r".*/approve$")) as sent:
        ann.evaluate("""(runId) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = `/orchestrator/${runId}/approve`;
            const csrf = document.createElement("input");
            csrf.type = "hidden";
            csrf.name = "_csrf";
            csrf.value = document.querySelector('meta[name="csrf-token"]').content;
            form.append(csrf);
            document.body.append(form);
            form.submit();
        }""", run_id)  # fmt: skip
    assert sent.value.status == 403
    ann.wait_for_load_state()
    expect(ann.locator("#error-summary")).to_contain_text("with four eyes")
    expect(ann.locator("#run-state")).to_have_text("awaiting approval")

    # A viewer reads the same diff, with no button to press.
    vera = sign_in("vera")
    vera.goto(f"{base}/orchestrator/{run_id}")
    expect(vera.locator("#diff")).to_contain_text("+ok")
    for control in ("#approve", "#reject", "#cancel"):
        expect(vera.locator(control)).to_have_count(0)
    expect(vera.locator("#approval")).to_contain_text("An operator approves or rejects it")
    refused = vera.goto(f"{base}/orchestrator/new")
    assert refused is not None and refused.status == 403  # only an operator submits a run

    # Another operator approves; the page follows the apply to its end.
    bob = sign_in("bob")
    bob.goto(f"{base}/orchestrator/{run_id}")
    assert run_axe(bob) == []
    bob.screenshot(path="/tmp/orchestrator-awaiting.png", full_page=True)
    bob.click("#approve")
    expect(bob.locator(".notice")).to_contain_text("Approved")
    expect(bob.locator("#run-state")).to_have_text("succeeded", timeout=SLOW)
    assert service.health() == 200
    outcome = bob.locator("#outcome")
    expect(outcome).to_contain_text("verify passed after the restart")
    expect(outcome).to_contain_text(service.head())
    expect(fact(bob, "Rolled back", "#outcome")).to_have_text("no")
    steps = bob.locator("[data-region=steps] li")
    expect(steps).to_have_text([re.compile(rf"succeeded\s+{name}") for name in (
        "Analyze", "Patch", "Commit the change", "Build", "Restart", "Verify")])  # fmt: skip
    expect(fact(bob, "Approval")).to_contain_text("approved by bob")
    expect(fact(bob, "Submitted by")).to_have_text("ann")
    timeline = bob.locator("[data-region=timeline]")
    for said in ("requested by ann on billing", "awaiting approval", "approved by bob",
                 "succeeded: verify passed after the restart"):  # fmt: skip
        expect(timeline).to_contain_text(said)
    # Each job's own page is a click away (its conversation, its output).
    plan_job = bob.locator("[data-region=steps] a:has-text('Job')").first
    expect(plan_job).to_have_attribute("href", re.compile(r"^/queue/job-"))
    bob.screenshot(path=str(SCREENSHOT), full_page=True)
    assert bob.locator("main").inner_text().count("{") == 0  # no raw JSON for people

    # The list and the catalog.
    bob.click("nav a:has-text('Orchestrator')")
    assert run_axe(bob) == []
    row = bob.locator(f"#run-{run_id}")
    expect(row).to_contain_text("billing")
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text("approved by bob")
    bob.select_option("#f-state", "failed")
    bob.click("form[role=search] button:has-text('Apply')")
    expect(bob.locator(f"#run-{run_id}")).to_have_count(0)
    expect(bob.locator("[data-region=runs]")).to_contain_text("No run matches.")
    bob.goto(f"{base}/orchestrator?service=billing&state=succeeded")
    expect(bob.locator(f"#run-{run_id}")).to_be_visible()
    refused = bob.goto(f"{base}/orchestrator?state=asleep")
    assert refused is not None and refused.status == 422
    expect(bob.locator("#f-state-error")).to_be_visible()
    bob.click("a:has-text('Service catalog')")
    billing = bob.locator("#service-billing")
    assert run_axe(bob) == []
    for shown in ("app/config.txt", "app/*.py", "protected", str(service.remote.bare), "main",
                  "py_compile", f"GET {service.url} answers 200", "no run: free"):  # fmt: skip
        expect(billing).to_contain_text(shown)
    expect(billing.locator(".last-check .badge")).to_have_text("passed")
    expect(billing.locator(".last-check a")).to_have_attribute("href", f"/orchestrator/{run_id}")


@pytest.mark.timeout(300)
def test_a_rejection_needs_a_reason_and_a_cancel_ends_a_waiting_run(
    orchestrated: Orchestrated, sign_in: Callable[[str], Page]
) -> None:
    base = orchestrated.cairn.base
    ann = sign_in("ann")
    ann.goto(f"{base}/orchestrator/new?service=billing")
    with ann.expect_response(re.compile(r".*/orchestrator/new$")) as sent:
        ann.click("button:has-text('Submit run')")  # no instruction
    assert sent.value.status == 422
    expect(ann.locator("#f-instruction-error")).to_be_visible()
    expect(ann.locator("#f-service")).to_have_value("billing")

    # The list follows new runs live.
    ann.goto(f"{base}/orchestrator")
    orchestrated.plan_does("printf 'ok\\n# tuned\\n' > app/config.txt")
    rejected = orchestrated.submit("ann", "Tune the config")
    expect(ann.locator(f"#run-{rejected}")).to_contain_text("Tune the config")
    bob = sign_in("bob")
    bob.goto(f"{base}/orchestrator/{rejected}")
    expect(bob.locator("#run-state")).to_have_text("awaiting approval", timeout=SLOW)
    bob.click("#reject")
    expect(bob.locator("#f-reason-error")).to_be_visible()  # a rejection says why
    expect(bob.locator("#run-state")).to_have_text("awaiting approval")
    bob.fill("#f-reason", "Not during the freeze")
    bob.click("#reject")
    expect(bob.locator(".notice")).to_contain_text("Rejected")
    expect(bob.locator("#run-state")).to_have_text("failed")
    expect(bob.locator("#outcome")).to_contain_text("rejected by bob: Not during the freeze")
    expect(bob.locator("#outcome")).to_contain_text("nothing was committed")
    expect(bob.locator("[data-region=steps]")).to_contain_text("Did not run.")

    # The submitter may cancel a run waiting for approval: it ends at once.
    orchestrated.plan_does("printf 'ok\\n# again\\n' > app/config.txt")
    cancelled = orchestrated.submit("ann", "Tune it again")
    ann.goto(f"{base}/orchestrator/{cancelled}")
    expect(ann.locator("#run-state")).to_have_text("awaiting approval", timeout=SLOW)
    ann.once("dialog", lambda dialog: dialog.accept())
    ann.click("#cancel")
    expect(ann.locator(".notice")).to_have_text("Cancelled.")
    expect(ann.locator("#run-state")).to_have_text("cancelled")
    expect(ann.locator("#outcome")).to_contain_text("cancelled by ann")
    ann.goto(f"{base}/orchestrator")
    expect(ann.locator(f"#run-{rejected}")).to_contain_text("rejected by bob")
    expect(ann.locator(f"#run-{cancelled}")).to_contain_text("cancelled")
