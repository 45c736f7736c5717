"""Credential detection: secrets never enter a payload, an event or a log line.

Payloads carry references (`env://NAME`, `file:///path`, `vault://mount/path#field`) that a
worker resolves at run time; anything that looks like the secret itself is refused.
"""

from __future__ import annotations

import re
from typing import Any

from cairn.domain.errors import ValidationFailed

REFERENCE_FORMS = "env://NAME, file:///path or vault://mount/path#field"

# Lookbehinds keep prefixes inside ordinary words ("task-...", "risk-...") from matching.
_CREDENTIAL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "a GitHub token",
        re.compile(r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    ),
    ("a GitLab token", re.compile(r"(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20,}")),
    # 20+ characters so that words like "sk-learn" are not secrets; covers "sk-ant-...".
    ("an OpenAI or Anthropic API key", re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{20,}")),
    ("an AWS access key id", re.compile(r"(?<![A-Z0-9])AKIA[0-9A-Z]{16}(?![0-9A-Z])")),
    ("a Slack token", re.compile(r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}")),
    # Through the END line (or the end of the text) so that redaction removes the key body too.
    (
        "a PEM private key",
        re.compile(
            r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"
            r"(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)"
        ),
    ),
    ("a URL with user info", re.compile(r"(?i)\bhttps?://[^\s/?#@]+@")),
)

_ENV_REF = re.compile(r"env://[A-Za-z_][A-Za-z0-9_]*")
_FILE_REF = re.compile(r"file:///[^\s\x00]*[^\s\x00/]")
_VAULT_REF = re.compile(r"vault://[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+#[A-Za-z0-9_.-]+")


def credential_kinds(text: str) -> list[str]:
    """Name each kind of credential that `text` appears to contain (empty if none)."""
    return [kind for kind, pattern in _CREDENTIAL_PATTERNS if pattern.search(text)]


def find_credentials(obj: Any, path: str = "payload") -> list[dict[str, str]]:
    """List `{path, reason}` for every string (key or value, any depth) holding a credential.

    The reason names the kind of credential, never the value.
    """
    found: list[dict[str, str]] = []
    _scan(obj, path, found)
    return found


def ensure_no_credentials(obj: Any, path: str = "payload") -> None:
    """Raise ValidationFailed if `obj` holds anything that looks like a credential."""
    found = find_credentials(obj, path)
    if found:
        raise ValidationFailed(
            f"{found[0]['path']}: {found[0]['reason']}"
            + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""),
            errors=found,
        )


def redact_credentials(text: str) -> str:
    """Replace anything in `text` that looks like a credential, for logs and event data."""
    for kind, pattern in _CREDENTIAL_PATTERNS:
        text = pattern.sub(f"[redacted {kind.split(' ', 1)[1]}]", text)
    return text


def is_secret_reference(value: str) -> bool:
    """Whether `value` is a reference to a secret (one of REFERENCE_FORMS), not a secret."""
    return any(form.fullmatch(value) for form in (_ENV_REF, _FILE_REF, _VAULT_REF))


def check_reference(value: str | None) -> str | None:
    """Return `value` if it is a secret reference (or None), else raise ValueError."""
    if value is not None and not is_secret_reference(value):
        # Never echo the value: a malformed reference is often the secret itself.
        raise ValueError(f"must be a reference ({REFERENCE_FORMS}), never a secret value")
    return value


def _scan(obj: Any, path: str, found: list[dict[str, str]]) -> None:
    if isinstance(obj, str):
        found.extend({"path": path, "reason": _reason(kind)} for kind in credential_kinds(obj))
    elif isinstance(obj, dict):
        for key, value in obj.items():
            child = f"{path}.{key}"
            if isinstance(key, str) and (kinds := credential_kinds(key)):
                # The key itself is the secret: keep it out of the path as well.
                child = f"{path}.<redacted key>"
                found.extend({"path": child, "reason": f"key {_reason(k)}"} for k in kinds)
            _scan(value, child, found)
    elif isinstance(obj, list | tuple):
        for index, item in enumerate(obj):
            _scan(item, f"{path}[{index}]", found)


def _reason(kind: str) -> str:
    return (
        f"looks like {kind}; secrets may not be sent in a payload, "
        f"pass a reference ({REFERENCE_FORMS}) in auth instead"
    )
