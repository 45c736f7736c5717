"""`cairn services apply FILE`: every entry checked before any is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.api.cli.services import read_services
from cairn.commands.settings import Settings
from cairn.domain.errors import ValidationFailed

GOOD = """
- name: billing
  repository: acme/billing
  allowedPaths: ["app/**"]
  build: {run: make}
  restart: {run: ./restart}
  verify: {http: {url: "http://127.0.0.1:9/health", retries: 3}}
  protected: true
- name: web
  repository: acme/web
  allowedPaths: ["src/"]
  compose: {file: compose.yaml, service: web}
"""


def test_a_file_of_services_is_read_with_compose_expanded(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(GOOD)
    billing, web = read_services(path, Settings())
    assert billing["protected"] is True and billing["verify"]["http"]["retries"] == 3
    assert web["restart"]["run"] == "docker compose -f compose.yaml up -d --no-deps web"


def test_one_bad_entry_refuses_the_whole_file_naming_each_field(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(GOOD + "- {name: Bad, repository: acme/x, allowedPaths: ['../up']}\n"
                    "- {name: billing, repository: acme/b, allowedPaths: [a], compose: "
                    "{service: b}}\n")  # fmt: skip
    with pytest.raises(ValidationFailed) as refused:
        read_services(path, Settings())
    paths = [e["path"] for e in refused.value.errors]
    assert "services[2].name" in paths and "services[2].allowedPaths" in paths
    assert "services[3].name" in paths  # named twice
    assert "nothing applied" in refused.value.message
