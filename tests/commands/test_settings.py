from __future__ import annotations

import pytest

from cairn.commands.settings import Settings
from cairn.domain.errors import ValidationFailed


def test_defaults_and_overrides() -> None:
    settings = Settings.from_env(
        {
            "CAIRN_REPO_CONCURRENCY": "1",
            "CAIRN_LEGACY_JOBS": "off",
            "FEATURE_PRD_AUTO_APPROVE_REVIEW": "true",
        }
    )
    assert settings.partitions == 16 and settings.repo_concurrency == 1
    assert not settings.legacy_jobs_enabled and settings.flags.auto_approve_review


def test_bad_values_name_each_variable() -> None:
    with pytest.raises(ValidationFailed) as caught:
        Settings.from_env(
            {"CAIRN_PARTITIONS": "0", "CAIRN_PORT": "x", "CAIRN_DEFAULT_RUNTIME": "vim"}
        )
    paths = {e["path"] for e in caught.value.errors}
    assert paths == {"CAIRN_PARTITIONS", "CAIRN_PORT", "CAIRN_DEFAULT_*"}
