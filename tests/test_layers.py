"""The layers and areas are import-linter contracts in pyproject.toml, run by scripts/test. These
tests show that the contracts hold on the tree and bite: each deliberate violation, made in a
copy of the tree, breaks its contract, and the report names the import that broke it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("domain", "streams", "commands", "projections", "api", "worker")
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path | None = None) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts, over `tree` (a copy laid out as the installed
    `cairn`) when given, else over the installed package."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)  # its `cairn.domain` ... come before the installed ones
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_the_tree_keeps_every_contract() -> None:
    done = lint()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for layer in LAYERS:
        shutil.copytree(ROOT / layer, root / "cairn" / layer,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return root


VIOLATIONS = [
    # (file, the line added, the contract that breaks, what the report names)
    ("domain/errors.py", "import redis", "The domain is pure", "cairn.domain.errors -> redis"),
    ("domain/tasks/task.py", "from cairn.domain.planning import imports",
     "No circles", ".tasks -> .planning"),
    ("streams/keys.py", "from cairn.streams import store", "No circles",
     "No cycles are allowed in cairn.streams"),
    ("worker/daemon.py", "from cairn.projections.tasks import board", "Layers",
     "cairn.worker.daemon -> cairn.projections.tasks.board"),
    ("api/dashboard/board.py", "from cairn.worker import daemon", "Only the processes'",
     "cairn.api.dashboard.board -> cairn.worker.daemon"),
    ("streams/store.py", "from cairn.domain.tasks import task", "streams knows nothing",
     "cairn.streams.store -> cairn.domain.tasks.task"),
    ("commands/runner.py", "import starlette", "no web", "cairn.commands.runner -> starlette"),
    ("domain/limits.py", "from cairn.commands import runner", "Layers",
     "cairn.domain.limits -> cairn.commands.runner"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "line", "contract", "named"), VIOLATIONS)
def test_a_violation_breaks_its_contract(
    tree: Path, path: str, line: str, contract: str, named: str
) -> None:
    target = tree / "cairn" / path
    before = target.read_text()
    target.write_text(before + f"\n{line}  # noqa\n")
    try:
        done = lint(tree)
    finally:
        target.write_text(before)
    assert done.returncode != 0, done.stdout
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken and named in broken, done.stdout
