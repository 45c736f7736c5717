"""Secret references resolved on the worker: env:// and file:// values, and errors that name the
reference (scheme and name) and what to do, never a value."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cairn.worker.secrets import SecretUnavailable, resolve_secrets

VALUE = "ghp_Secret0Value1For2Tests3Only4567890"


async def resolve(refs: dict[str, str], env: dict[str, str] | None = None) -> dict[str, str]:
    return await resolve_secrets(refs, env=env or {}, vault_addr=None)


async def test_env_and_file_references_resolve_by_purpose(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(VALUE + "\n")
    refs = {"repo": "env://REPO_TOKEN", "publish": f"file://{tmp_path}/token"}
    resolved = await resolve(refs, {"REPO_TOKEN": "repo-secret-1"})
    assert resolved == {"repo": "repo-secret-1", "publish": VALUE}


@pytest.mark.parametrize(
    ("content", "value"),
    [(b"abc123\n", "abc123"), (b"abc123\r\n", "abc123"), (b"abc123\n\n", "abc123\n"),
     (b"abc123", "abc123"), (b"line one\nline two\n", "line one\nline two")],
)  # fmt: skip
async def test_a_file_loses_one_trailing_newline(
    tmp_path: Path, content: bytes, value: str
) -> None:
    (tmp_path / "secret").write_bytes(content)
    assert await resolve({"repo": f"file://{tmp_path}/secret"}) == {"repo": value}


@pytest.mark.parametrize(
    ("ref", "env", "message"),
    [
        ("env://MISSING_TOKEN", {}, "repo secret env://MISSING_TOKEN is not set in the worker's "
         "environment; set MISSING_TOKEN"),
        ("env://EMPTY_TOKEN", {"EMPTY_TOKEN": ""}, "repo secret env://EMPTY_TOKEN is empty"),
        ("file:///no/such/secret", {}, "repo secret file:///no/such/secret cannot be read by "
         "the worker: No such file or directory"),
        ("file://relative/secret", {}, "needs an absolute path"),
        ("vault://kv/cairn/repo#token", {}, "is in Vault, and this worker has no Vault address: "
         "set CAIRN_VAULT_ADDR"),
        ("s3://bucket/key", {}, "not env://NAME, file:///path or vault://mount/path#field "
         "(its scheme is 's3')"),
    ],
)  # fmt: skip
async def test_an_unavailable_secret_says_which_and_what_to_do(
    ref: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(SecretUnavailable) as caught:
        await resolve({"repo": ref}, env)
    assert message in caught.value.message
    assert caught.value.details == {"purpose": "repo"}


async def test_a_directory_or_a_binary_file_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match="Is a directory"):
        await resolve({"repo": f"file://{tmp_path}"})
    (tmp_path / "binary").write_bytes(b"\xffsecret-bytes\xfe")
    with pytest.raises(SecretUnavailable, match="is not UTF-8 text") as caught:
        await resolve({"repo": f"file://{tmp_path}/binary"})
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "secret-bytes" not in str(caught.value) and "xff" not in str(caught.value)


async def test_vault_needs_the_hvac_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hvac", None)  # as when it is not installed
    with pytest.raises(SecretUnavailable, match="lacks the hvac library: pip install hvac"):
        await resolve_secrets({"publish": "vault://kv/cairn/publish#token"}, env={},
                              vault_addr="https://vault.example:8200")  # fmt: skip
