"""Real git against local bare remotes made in tmp_path, a recording wrapper around git, and a
fake `gh` (the only fake: a script that records its argv, environment and stdin)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cairn.domain.jobs.repositories import Remote
from cairn.worker.gitops import Git

REAL_GIT = shutil.which("git")
PR_URL = "https://github.com/octo/repo/pull/7"
AUTHOR = {"GIT_AUTHOR_NAME": "Seeder", "GIT_AUTHOR_EMAIL": "seed@example.com",
          "GIT_COMMITTER_NAME": "Seeder", "GIT_COMMITTER_EMAIL": "seed@example.com"}  # fmt: skip


def run_git(*args: str, cwd: Path | None = None) -> str:
    """git as a person at a terminal would run it (no Cairn code): for seeding and checking."""
    env = {"PATH": os.environ["PATH"], "HOME": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "LANG": "C.UTF-8", **AUTHOR}  # fmt: skip
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


@dataclass(frozen=True)
class Seeded:
    """A bare remote with `main` holding one commit, and a clone to push more commits from."""

    bare: Path
    seed: Path
    remote: Remote

    def commit(self, path: str, text: str, *, branch: str = "main", message: str = "x") -> str:
        start = branch if branch in self.branches() else "main"  # a new branch starts at main
        run_git("checkout", "-q", "-B", branch, f"origin/{start}", cwd=self.seed)
        target = self.seed / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        run_git("add", "-A", cwd=self.seed)
        run_git("commit", "-q", "-m", message, cwd=self.seed)
        run_git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=self.seed)
        run_git("fetch", "-q", "origin", cwd=self.seed)
        return self.sha(branch)

    def sha(self, branch: str = "main") -> str:
        return run_git("--git-dir", str(self.bare), "rev-parse", branch).strip()

    def branches(self) -> list[str]:
        refs = run_git("--git-dir", str(self.bare), "for-each-ref", "--format=%(refname:short)")
        return refs.split()


def make_remote(root: Path, name: str = "octo/repo", default: str = "main") -> Seeded:
    bare = root / "remotes" / f"{name}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    run_git("init", "-q", "--bare", "-b", default, str(bare))
    seed = root / "seeds" / name
    run_git("clone", "-q", str(bare), str(seed))
    run_git("checkout", "-q", "-b", default, cwd=seed)
    (seed / "src").mkdir()
    (seed / "README.md").write_text("# Repo\n")
    (seed / "src" / "app.py").write_text("def answer():\n    return 41\n")
    (seed / ".gitignore").write_text("*.log\n")
    run_git("add", "-A", cwd=seed)
    run_git("commit", "-q", "-m", "Initial commit", cwd=seed)
    run_git("push", "-q", "origin", default, cwd=seed)
    return Seeded(bare, seed, Remote(url=str(bare), display=name, local=True))


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    return make_remote(tmp_path)


@dataclass(frozen=True)
class GitCalls:
    """Every `git` the code under test started, one line of arguments each."""

    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def count(self, words: str) -> int:
        return sum(1 for line in self.lines() if words in line)


@pytest.fixture
def git_calls(tmp_path: Path) -> GitCalls:
    return GitCalls(tmp_path / "git-calls.log")


@pytest.fixture
def git_env(tmp_path: Path, git_calls: GitCalls) -> dict[str, str]:
    """A minimal environment whose PATH finds a recording wrapper before the real git."""
    bin_dir = tmp_path / "git-bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "git"
    wrapper.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{git_calls.log}"\nexec {REAL_GIT} "$@"\n'
    )
    wrapper.chmod(0o755)
    home = tmp_path / "worker-home"
    home.mkdir()
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
            "LANG": "C.UTF-8"}  # fmt: skip


@pytest.fixture
def git(git_env: dict[str, str]) -> Git:
    return Git(env=git_env, timeout_s=60)


@dataclass(frozen=True)
class FakeGh:
    bin_dir: Path
    record: Path
    control: Path

    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def fail_with(self, status: int, stderr: str) -> None:
        self.control.write_text(json.dumps({"status": status, "stderr": stderr}))

    def env(self, **extra: str) -> dict[str, str]:
        path = f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}"
        return {"PATH": path, "HOME": str(self.bin_dir), "LANG": "C.UTF-8", **extra}


FAKE_GH = """#!{python}
import json, os, sys
record = {{"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd(),
          "stdin": sys.stdin.read()}}
with open({record!r}, "a") as out:
    out.write(json.dumps(record) + "\\n")
control = {{"status": 0, "stderr": ""}}
if os.path.exists({control!r}):
    control = json.load(open({control!r}))
if control["status"]:
    sys.stderr.write(control["stderr"])
    sys.exit(control["status"])
print("Creating pull request for the branch into the base in octo/repo")
print()
print({url!r})
"""


@pytest.fixture
def fake_gh(tmp_path: Path) -> FakeGh:
    bin_dir = tmp_path / "gh-bin"
    bin_dir.mkdir()
    fake = FakeGh(bin_dir, tmp_path / "gh-calls.jsonl", tmp_path / "gh-control.json")
    script = bin_dir / "gh"
    script.write_text(
        FAKE_GH.format(
            python=sys.executable, record=str(fake.record), control=str(fake.control), url=PR_URL
        )
    )
    script.chmod(0o755)
    return fake
