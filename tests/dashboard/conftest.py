"""A real `cairn up` on free ports (embedded server, API, projector, scheduler, one local
worker) with fake agent CLIs first on PATH and a local git repository as the default, driven
by Debian's chromium through Playwright. Nothing here skips: without the browser the tests
fail, saying how to install it (scripts/install_browser)."""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from cairn.streams.server import free_port

CHROMIUM = Path(os.environ.get("CAIRN_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TOKEN = "dashboard-Admin-token-0123456789abcdefXYZ"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

# A stand-in for an agent CLI: prints numbered lines (for a minute when the prompt says SLOW,
# so a run can be watched, paused and cancelled; for 1.5 s when it says MEDIUM), changes a file
# in its working directory, exits 1 when the prompt says FAIL. The prompt comes as the last
# argument or on stdin.
FAKE_CLI = """#!/bin/sh
[ "$1" = "--version" ] && { echo "fake 0.0.0"; exit 0; }
prompt="$*"
if [ ! -t 0 ]; then prompt="$prompt $(cat)"; fi
echo "$(basename "$0") started" >> "${FAKE_CLI_LOG:-/dev/null}"
lines=3; pause=0.05
case "$prompt" in *SLOW*) lines=600; pause=0.1;; *MEDIUM*) lines=15; pause=0.1;; esac
i=1
while [ "$i" -le "$lines" ]; do
  echo "fake agent output line $i"
  i=$((i + 1))
  sleep "$pause"
done
echo "changed by the fake agent" >> FAKE_AGENT_NOTES.md 2>/dev/null || true
case "$prompt" in *FAIL*) echo "failing as asked" >&2; exit 1;; esac
exit 0
"""


def git(*args: str, cwd: Path | None = None) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Seeder", "GIT_AUTHOR_EMAIL": "seed@example.com",
           "GIT_COMMITTER_NAME": "Seeder", "GIT_COMMITTER_EMAIL": "seed@example.com"}  # fmt: skip
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def seed_repository(root: Path) -> str:
    """A bare repository whose main holds one commit, as `acme/app` under the git base URL
    `file://<root>/git`."""
    bare, work = root / "git" / "acme" / "app.git", root / "seed"
    bare.parent.mkdir(parents=True)
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("init", "-q", "-b", "main", str(work))
    (work / "README.md").write_text("# demo\n")
    git("add", "README.md", cwd=work)
    git("commit", "-q", "-m", "seed", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)
    return "acme/app"


@dataclass
class Cairn:
    base: str
    token: str
    root: Path
    repository: str
    process: subprocess.Popen[bytes]

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def log(self) -> str:
        return (self.root / "up.log").read_text(errors="replace")

    def cli(self, *args: str) -> str:
        """A `cairn` command against this install's store; its output."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env["CAIRN_DATA_DIR"] = str(self.root / ".cairn")
        done = subprocess.run([sys.executable, "-m", "cairn.api.cli", *args], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def new_token(self, name: str, role: str) -> str:
        """A new API token named `name` with `role` (`cairn token create`)."""
        found = re.search(r"cairn_\S+", self.cli("token", "create", "--name", name, "--role", role))
        assert found
        return found[0]


def start_cairn(root: Path, port: int, **extra: str) -> Cairn:
    """`cairn up` in `root` on `port`, ready to answer."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("codex", "claude", "gemini"):
        path = bin_dir / name
        path.write_text(FAKE_CLI)
        path.chmod(0o755)
    repository = seed_repository(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update({
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_CLI_LOG": str(root / "cli.log"),
        "CAIRN_PORT": str(port),
        "CAIRN_ADMIN_TOKEN": TOKEN,
        "CAIRN_DATA_DIR": str(root / ".cairn"),
        "CAIRN_DEFAULT_REPOSITORY": repository,
        "CAIRN_GIT_BASE_URL": (root / "git").as_uri(),
        "CAIRN_ALLOW_LOCAL_REPOSITORIES": "1",
        "CAIRN_DEFAULT_PUBLISH_MODE": "none",
        "CAIRN_RETRY_BASE_S": "0.5",
        "CAIRN_RETRY_CAP_S": "2",
        # The fake CLIs sign in as the real ones do: the worker offers an agent that does.
        "ANTHROPIC_API_KEY": "test-only", "OPENAI_API_KEY": "test-only",
        "GEMINI_API_KEY": "test-only",
        **extra,
    })  # fmt: skip
    with (root / "up.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cairn.api.cli", "up"], cwd=root, env=env,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    cairn = Cairn(f"http://127.0.0.1:{port}", TOKEN, root, repository, process)
    deadline = time.monotonic() + 90
    while "API on" not in cairn.log():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_cairn(cairn)
            raise AssertionError("cairn up did not start:\n" + cairn.log())
        time.sleep(0.2)
    return cairn


def stop_cairn(cairn: Cairn) -> None:
    if cairn.process.poll() is None:
        cairn.process.send_signal(signal.SIGTERM)
        try:
            cairn.process.wait(60)
        except subprocess.TimeoutExpired:
            cairn.process.kill()
            cairn.process.wait()


@pytest.fixture(scope="session")
def cairn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cairn]:
    running = start_cairn(tmp_path_factory.mktemp("dashboard"), free_port())
    yield running
    stop_cairn(running)


# Module-scoped, not session-scoped: Playwright's sync API keeps an event loop running in
# this thread while it lives, and every asyncio test after it would fail to start its own.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: run scripts/install_browser (Debian's chromium) first"
    )
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport=DESKTOP)
    made.set_default_timeout(10_000)
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext, cairn: Cairn) -> Iterator[Page]:
    """A signed-in page on the board; a script error on it fails the test."""
    fresh = context.new_page()
    errors: list[str] = []
    fresh.on("pageerror", lambda error: errors.append(str(error)))
    login(fresh, cairn)
    yield fresh
    assert errors == [], errors


def login(page: Page, cairn: Cairn, token: str = TOKEN) -> None:
    page.goto(cairn.base + "/login")
    page.fill("#f-token", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/tasks.*"))


def run_axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;undefined")
    results: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results["violations"] if v["impact"] in ("serious", "critical")
    ]  # fmt: skip


def wait_until(check: Callable[[], bool], timeout: float = 10, what: str = "") -> float:
    """Seconds it took for `check` to hold; AssertionError after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(0.05)
    return time.monotonic() - started


def compressed_size(body: bytes) -> int:
    return len(gzip.compress(body, compresslevel=6))


def unique(name: str) -> str:
    """A project or title no other test uses."""
    return f"{name}{time.monotonic_ns() % 10**9}"
