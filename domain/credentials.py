"""Credential detection: secrets never enter a payload, an event or a log line.

Payloads carry references (`env://NAME`, `file:///path`, `vault://mount/path#field`) that a
worker resolves at run time; anything that looks like the secret itself is refused.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from cairn.domain.errors import ValidationFailed
from cairn.domain.limits import MAX_DEPTH, depth_reason

REFERENCE_FORMS = "env://NAME, file:///path or vault://mount/path#field"

# Lookbehinds keep prefixes inside ordinary words ("task-...", "risk-...") from matching.
# Every repeat that can fail after a long run is bounded, so a scan stays linear in the text.
_AWS_KEY_ID = r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])"
_AWS_SECRET = r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
_SECRET_NAMES = r"(?:password|passwd|secret|client_secret|secret_key|api_key|apikey|access_token)"
# A value that names a secret instead of holding it: a reference, a variable, a mask.
_NOT_A_VALUE = r"(?!(?:env|file|vault)://|\$|\{\{|<|\*+(?![^\s\"',;&]))"
_CREDENTIAL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "a GitHub token",
        re.compile(r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    ),
    ("a GitLab token", re.compile(r"(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20,}")),
    # 20+ characters so that words like "sk-learn" are not secrets; covers "sk-ant-...".
    ("an OpenAI or Anthropic API key", re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{20,}")),
    # Before the key id, so that redaction takes the pair (id, then its secret) whole.
    (
        "an AWS secret access key",
        re.compile(
            rf"{_AWS_KEY_ID}[\s,:;|\"'=]{{1,10}}{_AWS_SECRET}"
            rf"|(?i:aws_?secret_?access_?key)[\s\"'=:]{{1,10}}{_AWS_SECRET}"
        ),
    ),
    ("an AWS access key id", re.compile(_AWS_KEY_ID)),
    ("a Slack token", re.compile(r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}")),
    # Through the END line (or the end of the text) so that redaction removes the key body too.
    (
        "a PEM private key",
        re.compile(
            r"(?s)-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----"
            r"(?:.*?-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|.*)"
        ),
    ),
    ("a URL with user info", re.compile(r"(?i)\bhttps?://[^\s/?#@]{1,256}@")),
    # Any other scheme (ssh, postgres, redis, amqp, ...) with user:password@ (user optional).
    (
        "a URL with a password",
        re.compile(
            r"(?i)(?<![a-z0-9+.-])(?!https?://)[a-z][a-z0-9+.-]{0,30}://"
            r"[^\s/?#@:]{0,256}:[^\s/?#@]{1,256}@"
        ),
    ),
    (
        "a JSON Web Token",
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    ),
    # password=..., secret: ...; after a colon (prose: "password: click the link") the value
    # must hold a digit or a sign to count.
    (
        "a password or secret",
        re.compile(
            rf"(?i)(?<![a-z0-9]){_SECRET_NAMES}(?:\s{{0,3}}=\s{{0,3}}[\"']?{_NOT_A_VALUE}"
            rf"[^\s\"',;&]{{3,}}|:\s{{0,3}}[\"']?{_NOT_A_VALUE}"
            rf"(?=[^\s\"',;&]{{0,200}}[^\sA-Za-z\"',;&])[^\s\"',;&]{{3,}})"
        ),
    ),
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


def looks_like_secret_value(name: str, value: str) -> bool:
    """Whether `value`, set under the name `name` (a field, a variable), looks like a secret:
    a known kind, anything but a reference under a secret's name, or a random-looking token."""
    if credential_kinds(value):
        return True
    if not _holds_a_value(value):
        return False
    return _is_secret_name(name) or _looks_random(value)


def safe_key(key: object) -> str:
    """A key as a path may show it: a secret-looking key redacted, a long one cut short."""
    text = str(key)
    if credential_kinds(text):
        return "<redacted key>"
    return text if len(text) <= _MAX_KEY_SHOWN else text[:_MAX_KEY_SHOWN] + "..."


_MAX_KEY_SHOWN = 64
# A field whose name says it holds a secret: `password`, `db_password`, `clientSecret`, ...
_SECRET_NAME = re.compile(
    r"(?:password|passwd|secret|secretkey|secretaccesskey|apikey|privatekey|accesstoken"
    r"|authtoken|refreshtoken)$"
)
_MASK = re.compile(r"[*xX.\-]+|<[^>]*>|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\{\{.*\}\}")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9+/=_.~-]+")


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(re.sub(r"[^a-z0-9]", "", name.lower())))


def _holds_a_value(value: str) -> bool:
    """Not empty, not a reference or a mask, not prose (a secret has no spaces)."""
    value = value.strip()
    return bool(value) and not (
        is_secret_reference(value) or _MASK.fullmatch(value) or any(c.isspace() for c in value)
    )


def _looks_random(value: str) -> bool:
    """A long token of letters in both cases and digits that switches between them often
    (`AbX9...`), unlike words (`ProductionServer2024`), paths or digests."""
    if len(value) < 20 or not _TOKEN_CHARS.fullmatch(value):
        return False
    classes = ["u" if c.isupper() else "l" if c.islower() else "d" if c.isdigit() else ""
               for c in value]  # fmt: skip
    if not {"u", "l", "d"} <= set(classes):
        return False
    pairs = [(a, b) for a, b in itertools.pairwise(classes) if a and b]
    return sum(a != b for a, b in pairs) >= 0.3 * len(pairs)


def _scan(obj: Any, path: str, found: list[dict[str, str]]) -> None:
    # Iterative with a bounded depth: a hostile nesting can neither exhaust the stack nor
    # hide a secret below what is scanned.
    stack: list[tuple[Any, str, int]] = [(obj, path, 1)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, str):
            found.extend({"path": where, "reason": _reason(k)} for k in credential_kinds(node))
            continue
        if not isinstance(node, dict | list | tuple):
            continue
        if depth > MAX_DEPTH:
            found.append({"path": where, "reason": depth_reason()})
            continue
        children: list[tuple[Any, str, int]] = []
        if isinstance(node, dict):
            for key, value in node.items():
                child = f"{where}.{safe_key(key)}"
                if isinstance(key, str) and (kinds := credential_kinds(key)):
                    # The key itself is the secret: safe_key keeps it out of the path too.
                    found.extend({"path": child, "reason": f"key {_reason(k)}"} for k in kinds)
                elif (
                    isinstance(key, str) and isinstance(value, str) and _is_secret_name(key)
                    and _holds_a_value(value) and not credential_kinds(value)
                ):  # fmt: skip
                    found.append({"path": child, "reason": _reason(_NAMED_SECRET)})
                children.append((value, child, depth + 1))
        else:
            children = [(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(node)]
        stack.extend(reversed(children))


_NAMED_SECRET = "a password or secret (its name says so)"


def _reason(kind: str) -> str:
    return (
        f"looks like {kind}; secrets may not be sent in a payload, "
        f"pass a reference ({REFERENCE_FORMS}) in auth instead"
    )
