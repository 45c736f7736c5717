"""Credential detection: each kind is refused with its path, ordinary text is not, and the
scan survives any input (depth, size) in bounded time."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cairn.domain.credentials import (
    find_credentials,
    looks_like_secret_value,
    redact_credentials,
)
from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.kinds import ContractSettings
from cairn.domain.jobs.registry import normalize_job
from cairn.domain.limits import MAX_DEPTH

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

# (id, text, the secret part that must not survive redaction)
SECRET_TEXTS = [
    ("aws-asia", "use ASIAIOSFODNN7EXAMPLE for the temp session", "ASIAIOSFODNN7EXAMPLE"),
    ("aws-secret-by-name", f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    ("aws-secret-env-style", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
    ("aws-secret-next-to-id", f"AKIAIOSFODNN7EXAMPLE:{AWS_SECRET}", AWS_SECRET),
    ("aws-secret-csv", f"ASIAIOSFODNN7EXAMPLE,{AWS_SECRET}", AWS_SECRET),
    ("ssh-url", "clone ssh://git:hunter22@example.com/repo.git", "hunter22"),
    ("postgres-url", "DATABASE_URL=postgres://app:s3cr3t@db:5432/app", "s3cr3t"),
    ("redis-url-no-user", "redis://:Sup3rPass@cache:6379/0", "Sup3rPass"),
    ("amqp-url", "amqp://guest:guestpw@mq//", "guestpw"),
    ("jwt", f"Authorization: Bearer {JWT}", JWT),
    ("password-pair", "login with password=hunter2 then", "hunter2"),
    ("password-pair-spaced", "PASSWORD = 'c0rrect-horse'", "c0rrect-horse"),
    ("passwd-colon", "passwd: s3cret!", "s3cret!"),
    ("secret-pair", "client secret=Zm9vYmFyYmF6", "Zm9vYmFyYmF6"),
    ("api-key-pair", "api_key=abcd1234efgh", "abcd1234efgh"),
]

ORDINARY_TEXTS = [
    "the password field is required",
    "Password: must be 8 characters or more",
    "reset your password: click the link we sent",
    "rotate the secret weekly; the secret manager holds it",
    "see https://github.com/a/b and http://example.com/x?y=1",
    "git@github.com:owner/repo.git and ssh://git@github.com/owner/repo",
    "mail ops@example.com, https://example.com/a@b",
    "password=${DB_PASSWORD} and secret=env://API_SECRET and passwd=$PASSWD",
    "token limit is 4096; max_tokens=512",
    "eyJ is how a JWT starts",
    "ASIA is a continent; AKIA alone is not a key",
    "sha256:3f786850e387550fdab836ed7e6dc881de23001b",
    "postgres://db:5432/app (no user) and redis://cache:6379/0",
]


@pytest.mark.parametrize(("text", "secret"), [c[1:] for c in SECRET_TEXTS],
                         ids=[c[0] for c in SECRET_TEXTS])  # fmt: skip
def test_each_secret_is_found_with_its_path_and_redacted(text: str, secret: str) -> None:
    found = find_credentials({"task": {"instructions": [text]}}, "payload")
    assert found and {f["path"] for f in found} == {"payload.task.instructions[0]"}
    assert all(secret not in f["reason"] for f in found)
    assert secret not in redact_credentials(text)


@pytest.mark.parametrize("text", ORDINARY_TEXTS)
def test_ordinary_text_is_not_a_secret(text: str) -> None:
    assert find_credentials({"text": text}) == []
    assert redact_credentials(text) == text


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("password", "hunter2"),
        ("db_password", "s3cret"),
        ("aws_secret_access_key", AWS_SECRET),
        ("awsSecretAccessKey", AWS_SECRET),
        ("clientSecret", "abcdef123456"),
        ("api_key", "abcd1234"),
        ("PASSWD", "letmein99"),
    ],
)
def test_a_value_under_a_secret_name_is_refused(key: str, value: str) -> None:
    found = find_credentials({"config": {key: value}}, "spec")
    assert [f["path"] for f in found] == [f"spec.config.{key}"]
    assert value not in repr(found)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("password", ""),
        ("password", "env://DB_PASSWORD"),
        ("password", "vault://kv/db#password"),
        ("password", "${DB_PASSWORD}"),
        ("password", "********"),
        ("password", "the password field is required"),
        ("password", True),
        ("secret_name", "prod-db"),
        ("password_hint", "your first pet"),
        ("max_tokens", "1024"),
    ],
)
def test_a_reference_or_prose_under_a_secret_name_passes(key: str, value: Any) -> None:
    assert find_credentials({key: value}) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_PASSWORD", "hunter2"),
        ("SETTING", "AbCdEfGhIjKlMnOpQrStUvWx12"),
        ("SETTING", AWS_SECRET),
        ("SETTING", JWT),
        ("DATABASE_URL", "postgres://u:pw@db/app"),
    ],
)
def test_a_secret_looking_container_env_value_is_refused_with_its_path(
    name: str, value: str
) -> None:
    env = {"LOG_LEVEL": "debug", name: value}
    payload = {
        "repository": "octo/repo",
        "task": {"instructions": "x", "container": {"enabled": False, "env": env}},
    }
    with pytest.raises(ValidationFailed) as caught:
        normalize_job("task", payload, ContractSettings())
    paths = [e["path"] for e in caught.value.errors]
    assert paths and set(paths) == {f"payload.task.container.env.{name}"}
    assert value not in repr(caught.value.errors) and value not in caught.value.message


def test_plain_container_env_values_and_references_pass() -> None:
    env = {
        "LOG_LEVEL": "debug", "NODE_ENV": "production", "PORT": "8080",
        "TZ": "Europe/Berlin", "API_TOKEN": "env://API_TOKEN", "CONFIG": "/etc/app/config.yaml",
        "FEATURES": "a,b,c", "GREETING": "hello world", "IMAGE_DIGEST": "sha256:" + "ab12" * 16,
    }  # fmt: skip
    payload = {"repository": "octo/repo", "task": {"instructions": "x", "container": {"env": env}}}
    job = normalize_job("task", payload, ContractSettings())
    assert job.normalized["task"]["container"]["env"] == env


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("LEVEL", "debug", False),
        ("LEVEL", "AbCdEfGhIjKlMnOpQrStUvWx12", True),
        ("DIGEST", "sha256:" + "ab12" * 16, False),
        ("DIGEST", "Europe/Berlin", False),
        ("TOKEN_FILE", "/run/secrets/token", False),
        ("API_SECRET", "zzzz", True),
        ("API_SECRET", "env://API_SECRET", False),
    ],
)
def test_looks_like_secret_value(name: str, value: str, secret: bool) -> None:
    assert looks_like_secret_value(name, value) is secret


def test_the_scan_survives_any_depth_and_refuses_past_the_limit() -> None:
    deep: Any = "leaf"
    for _ in range(50_000):
        deep = {"a": [deep]}
    found = find_credentials(deep, "payload")
    assert len(found) == 1 and str(MAX_DEPTH) in found[0]["reason"]
    assert found[0]["path"].startswith("payload.a[0].a[0]")


@pytest.mark.parametrize(
    "text",
    [
        "a." * 500_000,
        "https://" * 120_000,
        "password=" * 100_000,
        "eyJ" + "a" * 10 + "." * 300_000,
        "AKIAIOSFODNN7EXAMPL " * 50_000,
        "x://" + "u" * 1_000_000,
        "-----BEGIN " * 90_000,
    ],
    ids=["dots", "urls", "pairs", "jwt", "aws", "userinfo", "pem"],
)
def test_the_scan_takes_linear_time_on_hostile_text(text: str) -> None:
    started = time.perf_counter()
    find_credentials(text)
    redact_credentials(text)
    assert time.perf_counter() - started < 2.0
