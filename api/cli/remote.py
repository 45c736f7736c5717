"""The everyday commands' way to Cairn: its HTTP API, as any client (the same routes, roles
and errors). Where: CAIRN_API_URL, else the `cairn up` of the data directory (up.json). Who:
CAIRN_TOKEN, else the token `cairn up` leaves for this machine's CLI in its data directory."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn.api.cli.datadir import read_record
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError

CLI_TOKEN_FILE = "cli.token"
TIMEOUT_S = 30.0


class ApiRefused(CairnError):
    """The API refused a request (its problem+json, as it said it)."""

    code = "api_refused"


@dataclass(frozen=True)
class Api:
    base: str
    token: str

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, query=query)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body=body if body is not None else {})

    def patch(self, path: str, body: Any) -> Any:
        return self.call("PATCH", path, body=body)

    def call(self, method: str, path: str, *, body: Any = None,
             query: dict[str, Any] | None = None) -> Any:  # fmt: skip
        """One request; its JSON body, or ApiRefused with the problem's detail and fields."""
        with self._open(method, path, body, query, TIMEOUT_S) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def events(self, path: str) -> Iterator[tuple[str, Any]]:
        """A server-sent event stream's (event, data) pairs, as they come."""
        with self._open("GET", path, None, None, None) as response:
            name, data = "message", list[str]()
            for raw in response:
                line = raw.decode(errors="replace").rstrip("\r\n")
                if not line:
                    if data:
                        yield name, _json("\n".join(data))
                    name, data = "message", []
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())

    def _open(self, method: str, path: str, body: Any, query: dict[str, Any] | None,
              timeout: float | None) -> Any:  # fmt: skip
        url = self.base + path
        wanted = {k: v for k, v in (query or {}).items() if v is not None}
        if wanted:
            url += "?" + urllib.parse.urlencode(wanted)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            raise _refusal(e) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise CairnError(f"cannot reach Cairn's API at {self.base}: {reason}; is `cairn up` "
                             "running (or CAIRN_API_URL right)?") from e  # fmt: skip


def api_of(settings: Settings) -> Api:
    """The API this command talks to, and the token it talks with: from the data directory's
    `cairn up`, else (the data directory not named, in another folder) the last `cairn up` this
    user started."""
    data_dir = settings.data_dir
    if read_record(data_dir) is None and not os.environ.get("CAIRN_DATA_DIR"):
        data_dir = last_up() or data_dir
    base = os.environ.get("CAIRN_API_URL") or ""
    if not base:
        record = read_record(data_dir)
        if record is None:
            raise CairnError(
                f"no `cairn up` runs with the data directory {data_dir.resolve()}: start one "
                "(`cairn up`), run this where it runs (or set CAIRN_DATA_DIR), or set "
                "CAIRN_API_URL"
            )
        base = record.api_url
    token = os.environ.get("CAIRN_TOKEN") or _cli_token(data_dir)
    if not token:
        raise CairnError(
            "no token: set CAIRN_TOKEN (say, one from `cairn token create --role operator "
            "--name me`), or run this where `cairn up` runs (it leaves one for the CLI in "
            f"{settings.data_dir.resolve() / CLI_TOKEN_FILE})"
        )
    return Api(base.rstrip("/"), token)


def write_cli_token(data_dir: Path, token: str) -> None:
    """Leave `cairn up`'s CLI token for this machine's commands (0600, like the password), and
    say where this user's latest `cairn up` keeps its data (for commands run elsewhere)."""
    path = data_dir / CLI_TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    pointer = _pointer()
    try:
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.write_text(str(data_dir.resolve()) + "\n")
    except OSError:
        pass  # a home that cannot be written: commands then need CAIRN_DATA_DIR


def last_up() -> Path | None:
    """The data directory of this user's latest `cairn up`, if it said."""
    try:
        found = Path(_pointer().read_text().strip())
    except OSError:
        return None
    return found if found.is_dir() else None


def _pointer() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "cairn" / "last-up"


def _cli_token(data_dir: Path) -> str:
    try:
        return (data_dir / CLI_TOKEN_FILE).read_text().strip()
    except OSError:
        return ""


def _refusal(error: urllib.error.HTTPError) -> ApiRefused:
    try:
        problem = json.loads(error.read() or b"{}")
    except ValueError:
        problem = {}
    detail = problem.get("detail") or problem.get("title") or f"HTTP {error.code}"
    errors = [e for e in problem.get("errors") or [] if isinstance(e, dict) and "path" in e]
    return ApiRefused(f"{detail} (HTTP {error.code})", errors=errors, status=error.code)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
