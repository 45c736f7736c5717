"""The layers show in the imports: domain is pure, streams knows nothing of tasks, and the
edges (api, worker) write only through commands."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
C = "cairn."
FORBIDDEN = {
    "domain": {"redis", "starlette", "uvicorn", "httpx", C + "streams", C + "commands",
               C + "projections", C + "api", C + "worker"},
    "streams": {C + "commands", C + "projections", C + "api", C + "worker", "starlette",
                C + "domain.task", C + "domain.task_events", C + "domain.task_spec",
                C + "domain.contract"},
    "commands": {C + "projections", C + "api", C + "worker", "starlette"},
    "projections": {C + "api", C + "worker", "starlette"},
    "worker": {C + "api", "starlette"},
}  # fmt: skip


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_boundaries(package: str) -> None:
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imports(path):
            bad = [f for f in FORBIDDEN[package] if name == f or name.startswith(f + ".")]
            assert not bad, f"{path.relative_to(ROOT)} imports {name}"
