"""The CLIs Cairn pins are the ones the tests install, and the contract's agent runtimes."""

from __future__ import annotations

import json
from pathlib import Path

from cairn.domain.jobs.kinds import AGENT_RUNTIMES
from cairn.worker.agents.clis import CLIS

PACKAGE = Path(__file__).resolve().parents[2] / "agents" / "package.json"


def test_the_pins_are_the_versions_the_tests_install() -> None:
    installed = json.loads(PACKAGE.read_text())["dependencies"]
    assert {cli.package: cli.version for cli in CLIS.values()} == installed


def test_the_contracts_agent_runtimes_are_the_clis_known_to_the_worker() -> None:
    assert tuple(CLIS) == AGENT_RUNTIMES
