"""Screenshots of every dashboard page at desktop (1280x800) and phone (390x844) width, into
docs/screenshots/, from a real `cairn up` seeded with a realistic board and queue. Needs
Debian's chromium (scripts/install_browser) and the test extras (playwright).

    python scripts/screenshots.py [--out docs/screenshots] [--dark]

The agents are stand-ins (shell scripts first on PATH that print and change a file), and the
repository is a local git repository served as `acme/storefront`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import httpx
from playwright.sync_api import Page, ViewportSize, sync_playwright

from cairn.streams.server import free_port

TOKEN = "screenshots-Admin-token-0123456789abcdefXYZ"
ROOT = Path(__file__).resolve().parents[1]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
SIZES: list[tuple[str, ViewportSize, Literal["light", "dark"]]] = [
    ("desktop", DESKTOP, "light"), ("phone", PHONE, "dark"),
]  # fmt: skip
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
AGENT = """#!/bin/sh
prompt="$*"
if [ ! -t 0 ]; then prompt="$prompt $(cat)"; fi
lines=6; pause=0.2
case "$prompt" in *slowly*) lines=900; pause=0.4;; esac
i=1
while [ "$i" -le "$lines" ]; do
  case $((i % 3)) in
    1) echo "[agent] reading src/checkout/payment.ts (step $i)";;
    2) echo "[agent] running: npm test -- checkout (12 passed, 0 failed)";;
    0) echo "[agent] editing src/checkout/applePay.ts: +14 -3";;
  esac
  i=$((i + 1))
  sleep "$pause"
done
printf 'export const applePayEnabled = true;\\n' >> src_change.ts 2>/dev/null || true
exit 0
"""


def git(*args: str, cwd: Path | None = None) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
           "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com"}  # fmt: skip
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def start(root: Path, port: int) -> subprocess.Popen[bytes]:
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for name in ("codex", "claude", "gemini"):
        (bin_dir / name).write_text(AGENT)
        (bin_dir / name).chmod(0o755)
    bare, work = root / "git" / "acme" / "storefront.git", root / "seed"
    bare.parent.mkdir(parents=True)
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("init", "-q", "-b", "main", str(work))
    (work / "README.md").write_text("# storefront\n")
    git("add", "README.md", cwd=work)
    git("commit", "-q", "-m", "Initial commit", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update({
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "CAIRN_PORT": str(port),
        "CAIRN_ADMIN_TOKEN": TOKEN, "CAIRN_DATA_DIR": str(root / ".cairn"),
        "CAIRN_DEFAULT_REPOSITORY": "acme/storefront",
        "CAIRN_GIT_BASE_URL": (root / "git").as_uri(),
        "CAIRN_ALLOW_LOCAL_REPOSITORIES": "1", "CAIRN_DEFAULT_PUBLISH_MODE": "none",
        "CAIRN_RETRY_BASE_S": "0.5", "CAIRN_RETRY_CAP_S": "1",
    })  # fmt: skip
    log = (root / "up.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "cairn.api.cli", "up", "--workers", "2"],
                               cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 90
    while "API on" not in (root / "up.log").read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("cairn up did not start:\n" + (root / "up.log").read_text())
        time.sleep(0.2)
    return process


def wait(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {check}")
        time.sleep(0.2)


def seed(api: httpx.Client) -> dict[str, str]:
    """A storefront team's board and queue, some of it finished, some running."""

    def task(title: str, **fields: Any) -> str:
        body = {"title": title, "task_type": "feature", "priority": 1, "project": "storefront",
                **fields}  # fmt: skip
        made = api.post("/api/v2/tasks", json=body)
        assert made.status_code in (201, 202), made.text
        return str(made.json()["id"])

    def move(task_id: str, *targets: str, **extra: Any) -> None:
        for to in targets:
            moved = api.post(f"/api/v2/tasks/{task_id}/transition", json={"to": to, **extra})
            assert moved.status_code in (200, 202), moved.text

    def status(task_id: str) -> str:
        return str(api.get(f"/api/v2/tasks/{task_id}").json()["status"])

    ids: dict[str, str] = {}
    schema = task(
        "Design the orders schema", labels=["db", "api"], priority=2,
        description="Tables, keys and the migration order for orders v2.",
        acceptance_criteria=["Reviewed by the data team", "Migration is reversible"],
    )  # fmt: skip
    ids["schema"] = schema
    task("Write the API docs for /orders", task_type="docs", labels=["api"], blocked_by=[schema])
    task("Add search suggestions", labels=["ui", "search"], assignee="maya")
    task("Upgrade the payment SDK to v5", task_type="chore", priority=0, labels=["payments"])
    task("Show delivery estimates on the cart page", labels=["ui"], priority=2)
    rate = task("Rate-limit the search endpoint", labels=["api", "infra"], priority=2)
    move(rate, "ready", "blocked", reason="Waiting for the traffic numbers from ops")
    coupons = task("Remove the legacy coupon service", task_type="refactor", labels=["cleanup"])
    move(coupons, "cancelled", reason="Replaced by the promotions service")
    # Runs: one to review, one done, one running now (the agent works slowly).
    taxes = task("Fix rounding in tax totals", task_type="bug_fix", priority=3,
                 labels=["payments", "bug"], status="ready",
                 description="Totals are off by a cent for some EU carts.")  # fmt: skip
    sessions = task("Move sessions to Redis 7", task_type="chore", labels=["infra"],
                    status="ready")  # fmt: skip
    wait(lambda: status(taxes) == "in_review" and status(sessions) == "in_review", 120)
    move(sessions, "done")
    ids["taxes"] = taxes
    applepay = task(
        "Add Apple Pay to checkout", priority=2, labels=["payments", "ui"], assignee="sam",
        status="ready", description="Offer Apple Pay next to cards; work slowly and carefully.",
    )  # fmt: skip
    wait(lambda: status(applepay) == "in_progress", 60)
    ids["applepay"] = applepay
    # The queue: a quick action, a job for a repository that does not exist (it fails before
    # it executes), and one that needs a capability no worker offers.
    quick = api.post("/api/v2/quick-runs", json={"prompt": "Explain why test_checkout is flaky",
                                                 "project": "storefront"})  # fmt: skip
    ids["quick"] = quick.json()["id"]
    missing_repo = {"repository": "acme/warehouse", "task": {"instructions": "Bump lodash"}}
    body = {"type": "task", "project": "storefront", "maxAttempts": 1, "payload": missing_repo}
    failing = api.post("/api/queue/jobs", json=body)
    ids["failed"] = failing.json()["id"]
    gpu = api.post("/api/queue/jobs", json={"type": "task", "project": "storefront", "payload": {
        "repository": "acme/storefront", "requiredCapabilities": ["gpu"],
        "task": {"instructions": "Retrain the recommendations model"}}})  # fmt: skip
    ids["gpu"] = gpu.json()["id"]
    for _ in range(6):
        api.post("/api/queue/jobs", json={"type": "noop", "payload": {}, "project": "ops"})
    wait(lambda: api.get(f"/api/queue/jobs/{ids['quick']}").json()["status"] == "succeeded")
    wait(lambda: api.get(f"/api/queue/jobs/{ids['failed']}").json()["status"]
         in ("failed", "dead_letter"))  # fmt: skip
    ids["running"] = str(api.get(f"/api/v2/tasks/{applepay}").json()["active_job_id"])
    return ids


def shoot(page: Page, base: str, out: Path, name: str, path: str, settle_ms: int = 700) -> None:
    page.goto(base + path)
    page.wait_for_timeout(settle_ms)
    page.screenshot(path=str(out / f"{name}.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = start(Path(tmp), port)
        try:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=30) as api:  # fmt: skip
                ids = seed(api)
            pages = {
                "board": "/tasks?project=storefront",
                "task": f"/tasks/{ids['schema']}",
                "history": f"/tasks/{ids['taxes']}/history",
                "new-task": "/tasks/new?project=storefront",
                "queue": "/queue",
                "run-live": f"/queue/{ids['running']}",
                "run-failed": f"/queue/{ids['failed']}",
                "submit": "/queue/new",
                "workers": "/workers",
                "telemetry": "/telemetry",
                "audit": "/audit?project=storefront",
            }
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                for size, viewport, scheme in SIZES:
                    context = browser.new_context(viewport=viewport, color_scheme=scheme)
                    page = context.new_page()
                    shoot(page, base, args.out, f"login-{size}", "/login")
                    page.fill("#f-token", TOKEN)
                    page.click("button[type=submit]")
                    page.wait_for_url("**/tasks**")
                    for name, path in pages.items():
                        shoot(page, base, args.out, f"{name}-{size}", path,
                              2500 if name == "run-live" else 700)  # fmt: skip
                    context.close()
                browser.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
