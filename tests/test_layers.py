"""The layers show in the imports: each layer lists what it may import (the standard library
aside), so a new dependency across layers is a decision, not an accident. The domain is pure;
streams knows nothing of tasks or jobs; only streams talks to Redis; the edges (api, worker)
write through commands; only the processes' entry point (api/cli) starts a worker."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
C = "cairn."
ALLOWED: dict[str, set[str]] = {
    # croniter: cron maths for schedules (domain/cron.py); pure Python, no I/O.
    "domain": {C + "domain", "msgspec", "pydantic", "yaml", "croniter"},
    "streams": {C + "streams", C + "domain.errors", "redis", "hiredis", "orjson", "msgspec"},
    "commands": {C + "commands", C + "domain", C + "streams", "msgspec", "orjson"},
    "projections": {C + "projections", C + "commands", C + "domain", C + "streams", "msgspec",
                    "orjson"},
    # hvac: Vault secrets (worker/secrets.py), imported only when a vault:// reference is used.
    "worker": {C + "worker", C + "commands", C + "domain", C + "streams", "orjson", "msgspec",
               "hvac"},
    # prometheus_client: GET /metrics (api/metrics.py).
    "api": {C + "api", C + "commands", C + "domain", C + "projections", C + "streams",
            "starlette", "uvicorn", "h11", "pydantic", "orjson", "msgspec", "prometheus_client"},
}  # fmt: skip
# The processes' entry point starts every process, so it may import each of them.
ENTRY_POINTS = {"api/cli": {C + "worker"}}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def allowed(name: str, rules: set[str]) -> bool:
    if name.split(".")[0] in sys.stdlib_module_names or name == "__future__":
        return True
    return any(name == rule or name.startswith(rule + ".") for rule in rules)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_layer_imports_only_what_it_may(package: str) -> None:
    for path in sorted((ROOT / package).rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        rules = set(ALLOWED[package])
        for prefix, extra in ENTRY_POINTS.items():
            if where.startswith(prefix + "/"):
                rules |= extra
        for name in imports(path):
            assert allowed(name, rules), f"{where} imports {name}"


def test_the_rules_bite() -> None:
    assert not allowed("redis.asyncio", ALLOWED["projections"])
    assert not allowed("cairn.projections.board", ALLOWED["worker"])
    assert not allowed("cairn.domain.task", ALLOWED["streams"])
    assert allowed("cairn.domain.errors", ALLOWED["streams"])
    assert allowed("asyncio", ALLOWED["domain"])
