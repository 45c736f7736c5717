"""Consumer-group helpers: create groups, read new entries, report their lag."""

from __future__ import annotations

import contextlib
from typing import Any

from redis.exceptions import RedisError, ResponseError

from cairn.domain.errors import InfrastructureError
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope, decode_entry, text


async def ensure_group(client: Client, key: str, group: str, start: str = "0") -> None:
    """Create `group` on stream `key` (and the stream) unless it exists."""
    try:
        await client.xgroup_create(key, group, id=start, mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise InfrastructureError(f"cannot create group {group} on {key}: {e}") from e
    except RedisError as e:
        raise InfrastructureError(f"cannot create group {group} on {key}: {e}") from e


async def read_group(
    client: Client,
    key: str,
    group: str,
    consumer: str,
    *,
    count: int = 500,
    block_ms: int | None = 1000,
) -> list[Envelope]:
    """New entries for this consumer (None for `block_ms`: answer at once)."""
    try:
        reply = await client.xreadgroup(group, consumer, {key: ">"}, count=count, block=block_ms)
    except RedisError as e:
        raise InfrastructureError(f"read of group {group} on {key} failed: {e}") from e
    return _entries(reply)


async def read_groups(
    client: Client, group: str, consumer: str, streams: dict[str, str], *, count: int,
    block_ms: int | None,
) -> list[tuple[str, list[tuple[Any, dict[bytes, bytes]]]]]:  # fmt: skip
    """Raw entries for `consumer` of `group` on several streams in one call (each stream from
    its own id: ">" for new entries, "0" for its pending ones); undecoded, so a reader can
    decode only what it needs."""
    wanted: dict[Any, Any] = dict(streams)
    try:
        reply: Any = await client.xreadgroup(group, consumer, wanted, count=count, block=block_ms)
    except ResponseError as e:  # NOGROUP: the group was dropped meanwhile (a rebuild)
        raise InfrastructureError(f"read of group {group} failed: {e}") from e
    return [(text(key), entries) for key, entries in reply or []]


async def drop_group(client: Client, key: str, group: str) -> None:
    """Destroy `group` on `key`; nothing to do if either is gone."""
    with contextlib.suppress(ResponseError):
        await client.xgroup_destroy(key, group)


async def group_lag(client: Client, key: str) -> dict[str, dict[str, Any]]:
    """`XINFO GROUPS` of a stream as {group: {lag, pending, last_delivered}}."""
    try:
        groups = await client.xinfo_groups(key)
    except ResponseError:
        return {}
    except RedisError as e:
        raise InfrastructureError(f"XINFO GROUPS {key} failed: {e}") from e
    return {
        text(g["name"]): {
            "lag": g.get("lag"),
            "pending": g.get("pending"),
            "last_delivered": text(g.get("last-delivered-id", b"0-0")),
        }
        for g in groups
    }


def _entries(reply: Any) -> list[Envelope]:
    entries: list[Envelope] = []
    for _key, items in reply or []:
        entries.extend(decode_entry(entry_id, fields) for entry_id, fields in items if fields)
    return entries
