"""The install is one package, `cairn`: a built wheel holds nothing else at its top, and it
carries every Lua script and static file the code loads through importlib.resources."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("domain", "commands", "streams", "projections", "api", "worker")


def test_the_wheel_installs_one_cairn_package(tmp_path: Path) -> None:
    # Built from a copy: setuptools keeps ./build between builds, and stale modules there
    # would ship.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", ".cairn", "*.egg-info", "__pycache__", ".*_cache"))  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--wheel-dir", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = tmp_path.glob("cairn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(
        (".dist-info", ".data"))}  # fmt: skip
    assert tops == {"cairn"}
    for suffix in (".lua", ".py"):  # every module and script: a subpackage left out shows here
        shipped = {name for name in names if name.endswith(suffix)}
        in_tree = {f"cairn/{p.relative_to(ROOT)}" for d in FOLDERS
                   for p in (ROOT / d).rglob(f"*{suffix}")}  # fmt: skip
        assert in_tree and shipped == in_tree
    static = {f"cairn/{p.relative_to(ROOT)}" for p in (ROOT / "api").rglob("static/**/*")
              if p.is_file()}  # fmt: skip
    assert static <= set(names)
    assert {f"cairn/{d}/py.typed" for d in FOLDERS} <= set(names)
