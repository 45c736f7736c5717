"""Secret references resolved on the worker, so secrets never travel in a payload or an event:
`env://NAME` (the worker's environment), `file:///path` (a file on the worker), and
`vault://mount/path#field` (a KV v2 secret in HashiCorp Vault, through the optional `hvac`).

A `file://` secret should be readable by the worker's user only (mode 0600 or 0400): this
module reads what it is pointed at and does not refuse a group- or world-readable file, so
check the mode where such files are provisioned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cairn.domain.errors import CairnError


class SecretUnavailable(CairnError):
    """A referenced secret could not be read; the message names the reference, never a value."""

    code = "secret_unavailable"


async def resolve_secrets(
    refs: Mapping[str, str],
    *,
    env: Mapping[str, str],
    vault_addr: str | None,
) -> dict[str, str]:
    """Map each purpose ("repo", "publish", ...) to the value its reference names."""
    resolved = {}
    for purpose, ref in refs.items():
        scheme, _, rest = ref.partition("://")
        if scheme == "env":
            value = _from_env(purpose, rest, env)
        elif scheme == "file":
            value = await asyncio.to_thread(_from_file, purpose, ref, rest)
        elif scheme == "vault":
            value = await _from_vault(purpose, ref, rest, vault_addr)
        else:
            raise SecretUnavailable(
                f"the {purpose} secret's reference is not env://NAME, file:///path or "
                f"vault://mount/path#field (its scheme is {scheme[:20]!r})",
                purpose=purpose,
            )
        if not value:
            message = f"the {purpose} secret {_shown(ref)} is empty"
            raise SecretUnavailable(message, purpose=purpose)
        resolved[purpose] = value
    return resolved


def _shown(ref: str) -> str:
    # References are checked at submission (domain/credentials.check_reference), so they name
    # a place; cut short all the same, as a malformed one could be anything.
    return ref if len(ref) <= 200 else ref[:200] + "..."


def _from_env(purpose: str, name: str, env: Mapping[str, str]) -> str:
    if name not in env:
        raise SecretUnavailable(
            f"the {purpose} secret env://{name} is not set in the worker's environment; "
            f"set {name} where the worker starts",
            purpose=purpose,
        )
    return env[name]


def _from_file(purpose: str, ref: str, path: str) -> str:
    if not path.startswith("/"):
        message = f"the {purpose} secret {_shown(ref)} needs an absolute path (file:///path)"
        raise SecretUnavailable(message, purpose=purpose)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise SecretUnavailable(
            f"the {purpose} secret {_shown(ref)} cannot be read by the worker: {e.strerror}",
            purpose=purpose,
        ) from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Not chained: the decode error quotes a byte of the secret.
        message = f"the {purpose} secret {_shown(ref)} is not UTF-8 text"
        raise SecretUnavailable(message, purpose=purpose) from None
    # Files usually end in a newline that is no part of the secret; only one is taken off.
    return text.removesuffix("\n").removesuffix("\r")


async def _from_vault(purpose: str, ref: str, rest: str, addr: str | None) -> str:
    place, _, field = rest.partition("#")
    mount, _, path = place.partition("/")
    if not addr:
        message = f"the {purpose} secret {_shown(ref)} is in Vault, and this worker has no Vault "
        raise SecretUnavailable(message + "address: set CAIRN_VAULT_ADDR", purpose=purpose)
    try:
        import hvac  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError as e:
        raise SecretUnavailable(
            f"the {purpose} secret {_shown(ref)} is in Vault, and this worker lacks the hvac "
            "library: pip install hvac where the worker runs",
            purpose=purpose,
        ) from e

    def read() -> Any:
        client = hvac.Client(url=addr)  # the token: hvac reads VAULT_TOKEN itself
        return client.secrets.kv.v2.read_secret_version(
            path=path, mount_point=mount, raise_on_deleted_version=True
        )

    try:
        answer = await asyncio.to_thread(read)
    except Exception as e:  # hvac's errors and the HTTP client's; the type says which
        raise SecretUnavailable(
            f"the {purpose} secret {_shown(ref)} could not be read from Vault at {addr}: "
            f"{type(e).__name__} (a missing path, a token without access, or Vault down)",
            purpose=purpose,
        ) from e
    data = answer.get("data", {}).get("data", {}) if isinstance(answer, dict) else {}
    if not isinstance(data, dict) or field not in data:
        message = f"the {purpose} secret {_shown(ref)}: the Vault secret has no field {field!r}"
        raise SecretUnavailable(message, purpose=purpose)
    return str(data[field])
