"""The event envelope: how one event is laid out as the fields of a stream entry.

Fields are plain strings so `redis-cli XRANGE` is enough to audit the log: `id`, `type`, `agg`,
`ver`, `ts`, `actor`, `corr`, `cause`, `schema`, `data` (a JSON object).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson


class Envelope(msgspec.Struct, frozen=True):
    id: str
    type: str
    agg: str
    ver: int
    ts: str
    actor: str
    corr: str
    cause: str
    schema: int
    data: dict[str, Any]
    position: str = ""  # the partition-log entry id once written; "" before


def decode_entry(entry_id: Any, fields: Any, with_data: bool = True) -> Envelope:
    """Decode one stream entry; `position` is the entry id it was read at. Without data, the
    envelope's `data` is left empty (a reader that only passes over the event)."""
    return Envelope(
        id=fields[b"id"].decode(),
        type=fields[b"type"].decode(),
        agg=fields[b"agg"].decode(),
        ver=int(fields[b"ver"]),
        ts=fields[b"ts"].decode(),
        actor=fields[b"actor"].decode(),
        corr=fields[b"corr"].decode(),
        cause=fields[b"cause"].decode(),
        schema=int(fields[b"schema"]),
        data=orjson.loads(fields[b"data"]) if with_data else {},
        position=text(entry_id),
    )


def decode_pairs(entry_id: Any, flat: list[Any]) -> Envelope:
    """Decode an entry whose fields came as a flat [name, value, ...] list (from a script)."""
    return decode_entry(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))


def text(value: Any) -> str:
    """A reply value as str (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def now_rfc3339() -> str:
    """The current UTC time, RFC 3339 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def position_key(position: str) -> tuple[int, int]:
    """A stream entry id as a comparable tuple ("0-0" sorts first)."""
    ms, _, seq = position.partition("-")
    return int(ms or 0), int(seq or 0)
