"""The data directory of a `cairn up`: a lock held for its life, so a second `cairn up` there is
refused with the first one named, and a record of how to reach it (`up.json`: pid, API URL,
store URL, start time) that the other commands read when CAIRN_REDIS_URL is not set. The
record holds the store's password, so it is mode 0600 in a 0700 directory."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.streams.connection import connect
from cairn.streams.driver import Client

RECORD_FILE = "up.json"


@dataclass(frozen=True)
class UpRecord:
    pid: int
    api_url: str
    redis_url: str | None  # None while the store is starting
    started: str


@dataclass(frozen=True)
class StoreTarget:
    """The store a command talks to, and what to check when it does not answer."""

    url: str
    hint: str

    @property
    def address(self) -> str:
        return store_address(self.url)


class HeldDataDir:
    """The lock on a data directory, held until the `hold_data_dir` block ends."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir, self.fd = data_dir, fd
        self.started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def record(self, *, api_url: str, redis_url: str | None) -> None:
        body = orjson.dumps(
            {"pid": os.getpid(), "api_url": api_url, "redis_url": redis_url,
             "started": self.started},
        )  # fmt: skip
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, body + b"\n", 0)


@contextmanager
def hold_data_dir(data_dir: Path) -> Iterator[HeldDataDir]:
    """Lock `data_dir` for one `cairn up`; another one holding it is an error naming it. The
    kernel drops the lock when the process ends, however it ends."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(data_dir / RECORD_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _already_running(data_dir) from None
        os.fchmod(fd, 0o600)
        yield HeldDataDir(data_dir, fd)
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def read_record(data_dir: Path) -> UpRecord | None:
    """What the last `cairn up` on `data_dir` recorded (it may have stopped since)."""
    try:
        raw = orjson.loads((data_dir / RECORD_FILE).read_bytes())
        return UpRecord(
            int(raw["pid"]), str(raw["api_url"]), raw.get("redis_url"), str(raw["started"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_store(settings: Settings) -> StoreTarget:
    """CAIRN_REDIS_URL if set, else the store the data directory's `cairn up` recorded."""
    if settings.redis_url:
        hint = "is it running (`cairn up` runs one), and is CAIRN_REDIS_URL right?"
        return StoreTarget(settings.redis_url, hint)
    where = settings.data_dir.resolve()
    record = read_record(settings.data_dir)
    if record is None or not record.redis_url:
        raise CairnError(
            f"no store to talk to: CAIRN_REDIS_URL is not set and no `cairn up` has run with "
            f"the data directory {where}: start `cairn up` there (or set CAIRN_DATA_DIR to "
            "its data directory), or set CAIRN_REDIS_URL"
        )
    return StoreTarget(record.redis_url, f"is `cairn up` running (data directory {where})?")


async def open_store(target: StoreTarget) -> Client:
    """A client for the store, checked with a PING: a store that is down is one clear line."""
    client = connect(target.url)
    try:
        await client.ping()
    except (CairnError, OSError) as e:
        await client.aclose()
        raise CairnError(
            f"cannot reach the store at {target.address} ({_plain_reason(e)}): {target.hint}"
        ) from e
    return client


def _plain_reason(error: BaseException) -> str:
    """The plainest words for a failure: the system's ("Connection refused") if there is one
    down the chain of causes, else the first cause's message."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return str(error.__cause__ or error).rstrip(".")


def store_address(url: str) -> str:
    """Where `url` points, without its credentials."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def _already_running(data_dir: Path) -> CairnError:
    record = read_record(data_dir)
    where = data_dir.resolve()
    if record is None:
        return CairnError(f"another `cairn up` is starting with the data directory {where}")
    return CairnError(
        f"`cairn up` already runs with the data directory {where} (pid {record.pid}, API on "
        f"{record.api_url}, since {record.started}): use it, stop it (kill {record.pid}), or "
        "give this one another CAIRN_DATA_DIR"
    )
