"""Making Redis clients: one place, so every process gets the same connection class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

Call = tuple[Sequence[Any], Sequence[Any]]  # a script call's keys and arguments


class PackedConnection(Connection):
    """Packs commands with hiredis (C) rather than redis-py's Python packer: about 8x less
    CPU per command, which is most of a command's cost on the client."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:
            args = (*args[0].split(), *args[1:])  # "CONFIG GET" style names are two arguments
        return [hiredis.pack_command(args)]


async def run_script_calls(
    client: aioredis.Redis, script: AsyncScript, calls: Sequence[Call]
) -> list[Any]:
    """Call `script` once per (keys, args) in one pipeline, by digest; each call gets its own
    reply or error. If the server lost the script (a restart) it is loaded again and only the
    calls it refused are sent again: the others ran, and must not run twice. A failure of that
    second send reaches only the refused calls."""
    replies = await _evalsha_all(client, script, calls)
    again = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if again:
        try:
            await client.script_load(script.script)
            retried = await _evalsha_all(client, script, [calls[i] for i in again])
        except (RedisError, OSError) as e:
            retried = [e] * len(again)
        for i, reply in zip(again, retried, strict=True):
            replies[i] = reply
    return replies


async def _evalsha_all(
    client: aioredis.Redis, script: AsyncScript, calls: Sequence[Call]
) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


def connect(url: str, max_connections: int | None = None) -> aioredis.Redis:
    """An asyncio client for `url`; plain TCP connections use the hiredis packer."""
    options: dict[str, Any] = {"max_connections": max_connections}
    if url.startswith("redis://"):
        options["connection_class"] = PackedConnection
    pool = aioredis.ConnectionPool.from_url(url, **options)
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
