"""The README's walkthrough, run as written: its first block (the agent, the key, `cairn up`) in
one process, its second in another, on a fresh data directory and home. What stands in for the
outside: a scripted model server for Anthropic (the key is a placeholder), a `gh` of its own,
and local bare repositories for GitHub (CAIRN_GIT_BASE_URL). The first of the two commands
(`python3 -m venv .venv && .venv/bin/pip install -e .`) is this checkout's .venv, linked."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cairn.streams.server import free_port
from tests.agents.clis import require_clis
from tests.agents.model_server import ModelServer, status, text, write
from tests.worker.conftest import FAKE_GH, PR_URL, make_remote, run_git

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)


def walkthrough_blocks() -> list[str]:
    """The two `sh` blocks of the README's walkthrough section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the walkthrough has two blocks: one terminal, then another"
    return blocks


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    require_clis()  # npm must be here: the walkthrough installs claude with it
    first, second = walkthrough_blocks()
    work, home, remotes = tmp_path / "work", tmp_path / "home", tmp_path / "remotes"
    for folder in (work, home, remotes):
        folder.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    web = make_remote(remotes, "you/web")
    gh_bin = tmp_path / "gh-bin"
    gh_bin.mkdir()
    (gh_bin / "gh").write_text(FAKE_GH.format(python=sys.executable, record=str(
        tmp_path / "gh-calls.jsonl"), control=str(tmp_path / "none.json"), url=PR_URL))
    (gh_bin / "gh").chmod(0o755)
    model = ModelServer(default=[write("hello.txt", "hello\n"), text("I added hello.txt.")])
    model.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CAIRN_", "ANTHROPIC_", "XDG_CONFIG"))}  # fmt: skip
    env.update({
        "HOME": str(home), "PATH": f"{gh_bin}{os.pathsep}{os.environ['PATH']}",
        "CAIRN_PORT": str(port),
        # What stands in for Anthropic and for GitHub:
        "ANTHROPIC_BASE_URL": model.url, "CAIRN_GIT_BASE_URL": remotes.as_uri() + "/remotes",
        "CAIRN_GIT_AUTHOR_NAME": "Cairn", "CAIRN_GIT_AUTHOR_EMAIL": "cairn@example.com",
    })  # fmt: skip
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(["bash", "-euo", "pipefail", "-c", first], cwd=work, env=env,
                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while "3. create a project" not in log.read_text(errors="replace"):  # its last line
            assert up.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.5)
        started = log.read_text(errors="replace")
        assert "cairn: next steps" in started
        assert re.search(r"claude 2\.1\.197[^;]* with (api key|gateway)", started), started
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", second], cwd=work, env=env,
                              capture_output=True, text=True, timeout=420, check=False)  # fmt: skip
        said = done.stdout + done.stderr
        assert done.returncode == 0, said + "\n--- cairn up ---\n" + log.read_text()
        assert "signs in with" in started and "I added hello.txt." in said, said
        demo = home / "demo"
        branches = run_git("-C", str(demo), "branch", "--list", "cairn/*").split()
        assert len([b for b in branches if b.startswith("cairn/")]) == 2, said
        shown = run_git("-C", str(demo), "show", f"{branches[-1]}:hello.txt")
        assert shown == "hello\n"
        # The pull request: pushed to the stand-in for GitHub, opened through gh.
        calls = [json.loads(line) for line in (tmp_path / "gh-calls.jsonl").read_text()
                 .splitlines()]  # fmt: skip
        assert any(c["argv"][:2] == ["pr", "create"] for c in calls)
        assert any(b.startswith("cairn/") for b in web.branches())
        assert PR_URL in said
        everyday(env, home / "demo", model)
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
        model.stop()


def everyday(env: dict[str, str], demo: Path, model: ModelServer) -> None:
    """The everyday commands against the walkthrough's `cairn up`, from its repository (the
    data directory found through this user's latest `cairn up`): a failed run exits 1, every
    read has --json, a detached run prints its id."""
    env = {**env, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"}

    def cairn(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["cairn", *args], cwd=demo, env=env, capture_output=True,
                              text=True, timeout=180, check=False)  # fmt: skip

    refused = model.script("SCRIPT-walkthrough-401", [status(401, times=999)])
    failed = cairn("run", f"Refused {refused}", "--runtime", "claude", "--publish", "none")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "failed" in failed.stdout and "check the key" in failed.stdout, failed.stdout
    listed = json.loads(cairn("jobs", "list", "--json").stdout)
    assert len(listed["items"]) == 4
    job_id = listed["items"][0]["id"]
    shown = cairn("jobs", "show", job_id)
    assert shown.returncode == 0 and job_id in shown.stdout and "auth_failed" not in shown.stdout
    tasks = json.loads(cairn("tasks", "list", "--project", "demo", "--json").stdout)
    assert [t["title"] for t in tasks] == ["Add a hello file"]
    detached = cairn("run", "Say hello", "--runtime", "shell", "--publish", "none", "--detach")
    assert re.fullmatch(r"job-\d{2}-[0-9a-z]+\n", detached.stdout), detached.stdout
    unknown = cairn("jobs", "show", "job-00-nosuchjob0000000000000000")
    assert unknown.returncode == 2 and "does not exist" in unknown.stderr, unknown.stderr
