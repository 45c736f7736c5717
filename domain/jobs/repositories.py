"""Repository forms a job may name, and the remote each one resolves to.

`owner/repo` resolves against CAIRN_GIT_BASE_URL; a clean `https://` URL and `git@host:path`
are used as given; a local path or `file://` URL only with CAIRN_ALLOW_LOCAL_REPOSITORIES (one
machine, tests): on a shared worker it would let a job read any repository the worker can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

REPOSITORY_FORMS = "owner/repo, an https:// URL without credentials, or git@host:path"
LOCAL_FORMS = "an absolute local path or a file:/// URL"
LOCAL_FLAG = "CAIRN_ALLOW_LOCAL_REPOSITORIES"
LOCAL_OFF = (
    f"local repositories are off on this server ({LOCAL_FORMS}); "
    f"set {LOCAL_FLAG}=true to allow them"
)
Form = Literal["owner_repo", "https", "scp", "local"]

_OWNER_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SCP_LIKE = re.compile(r"git@[A-Za-z0-9.-]+:[A-Za-z0-9_.~-][A-Za-z0-9_./~-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BASE_SCHEMES = ("https", "http", "ssh", "file")


@dataclass(frozen=True)
class Remote:
    """What git fetches (`url`), what a person is shown (`display`, never with credentials),
    and whether it is on this machine."""

    url: str
    display: str
    local: bool


def check_repository(value: str | None, *, allow_local: bool = False) -> str | None:
    """Return the repository trimmed if it is in one of REPOSITORY_FORMS (or a local path or
    file:// URL when `allow_local`), else raise ValueError saying what is accepted."""
    if value is None:
        return None
    value = value.strip()
    check_repository_form(value, allow_local=allow_local)
    return value


def repository_form(value: str) -> Form | None:
    """Which of the accepted forms `value` is in (None: none of them)."""
    if _OWNER_REPO.fullmatch(value) and not {".", ".."} & set(value.split("/")):
        return "owner_repo"
    if _SCP_LIKE.fullmatch(value):
        return "scp"
    if _is_clean_https(value):
        return "https"
    if _is_local(value):
        return "local"
    return None


def check_repository_form(value: str, *, allow_local: bool) -> Form:
    """The form of `value`, or ValueError naming the forms (and the setting, for a local one)."""
    form = repository_form(value)
    if form is None:
        extra = f", or {LOCAL_FORMS}" if allow_local else ""
        raise ValueError(f"repository must be {REPOSITORY_FORMS}{extra}")
    if form == "local" and not allow_local:
        raise ValueError(LOCAL_OFF)
    return form


def resolve_repository(value: str, *, git_base_url: str, allow_local: bool) -> Remote:
    """The remote a job's repository names; ValueError saying what is accepted otherwise."""
    value = value.strip()
    form = check_repository_form(value, allow_local=allow_local)
    if form == "owner_repo":
        url = _join(git_base_url, value if value.endswith(".git") else f"{value}.git")
        return Remote(url=url, display=_display(url), local=_is_local_base(git_base_url))
    return Remote(url=value, display=_display(value), local=form == "local")


def _join(base: str, owner_repo: str) -> str:
    base = base.strip()
    scheme = urlsplit(base).scheme if "://" in base else ""
    if scheme not in _BASE_SCHEMES and not base.startswith("/") and not _scp_base(base):
        raise ValueError(
            f"CAIRN_GIT_BASE_URL must be an http(s)://, ssh:// or file:// URL, an absolute "
            f"folder or git@host: (got {_display(base)!r})"
        )
    if _scp_base(base) and base.endswith(":"):
        return base + owner_repo
    return base.rstrip("/") + "/" + owner_repo


def _scp_base(base: str) -> bool:
    return bool(re.fullmatch(r"git@[A-Za-z0-9.-]+:[A-Za-z0-9_./~-]*", base))


def _is_local_base(base: str) -> bool:
    return base.strip().startswith(("/", "file:"))


def _display(url: str) -> str:
    """`url` without its credentials: all user info of an http(s) URL (a token is often the
    user name there), the password of any other URL."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname or "", parts.port
    except ValueError:
        return "<repository URL>"
    if "@" not in parts.netloc:
        return url
    host = f"{hostname}:{port}" if port else hostname
    user = parts.username if parts.scheme not in ("http", "https") else None
    netloc = f"{user}@{host}" if user else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _is_clean_https(value: str) -> bool:
    try:
        url = urlsplit(value)
    except ValueError:
        return False
    clean = not re.search(r"[\s@]", value) and not url.query and not url.fragment
    return clean and url.scheme == "https" and bool(url.hostname) and url.path not in ("", "/")


def _is_local(value: str) -> bool:
    if _CONTROL.search(value):
        return False
    if value.startswith("file:"):
        try:
            url = urlsplit(value)
        except ValueError:
            return False
        if url.netloc not in ("", "localhost") or url.query or url.fragment:
            return False
        value = url.path
    segments = value.split("/")
    return value.startswith("/") and value.strip("/") != "" and ".." not in segments
