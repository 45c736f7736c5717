"""Making Redis clients: one place, so every process gets the same connection class (one
server here, a cluster in cluster.py), each raising Cairn's errors (driver.py), never the
driver's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection, SSLConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from cairn.domain.errors import InfrastructureError
from cairn.streams.cluster import connect_cluster
from cairn.streams.driver import (
    CONNECT_TIMEOUT_S,
    HEALTH_CHECK_S,
    Call,
    Client,
    translate,
    translated,
)


class StoreClient(aioredis.Redis):
    """A client whose commands raise Cairn errors (StoreUnavailable for outages), never the
    driver's; ResponseErrors that streams/ handles itself (NOGROUP, BUSYGROUP, NOSCRIPT) pass
    unchanged as ResponseError subclasses are matched by message there."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except RedisError as e:
            raise translated(e) from e

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return StorePipeline(self.connection_pool, self.response_callbacks, transaction,
                             shard_hint)  # fmt: skip


class StorePipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except RedisError as e:
            raise translated(e) from e


class PackedConnection(Connection):
    """Packs commands with hiredis (C) rather than redis-py's Python packer: about 8x less
    CPU per command, which is most of a command's cost on the client."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return _pack(args)


class PackedSSLConnection(SSLConnection):
    """The same packing over TLS (`rediss://`; certificates as the URL's `ssl_*` options say)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return _pack(args)


def _pack(args: tuple[Any, ...]) -> list[bytes]:
    if isinstance(args[0], str) and " " in args[0]:
        args = (*args[0].split(), *args[1:])  # "CONFIG GET" style names are two arguments
    return [hiredis.pack_command(args)]


async def run_script_calls(client: Client, script: AsyncScript, calls: Sequence[Call]) -> list[Any]:
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
        except (InfrastructureError, RedisError, OSError) as e:
            retried = [e] * len(again)
        for i, reply in zip(again, retried, strict=True):
            replies[i] = reply
    return [translate(r) if isinstance(r, RedisError) else r for r in replies]


async def _evalsha_all(client: Client, script: AsyncScript, calls: Sequence[Call]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


CLUSTER_SCHEMES = ("redis+cluster", "redis+clusters")


def connect(url: str, max_connections: int | None = None) -> Client:
    """An asyncio client for `url` whose errors are Cairn's; plain TCP connections use the
    hiredis packer. No call is retried by the driver: a write that may have landed is retried
    (or not) by the caller, which knows whether it is idempotent."""
    if url.split("://", 1)[0] in CLUSTER_SCHEMES:
        return connect_cluster(url, max_connections)
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "socket_keepalive": True,
        "socket_timeout": None,  # redis-py's default is 5 s: see NO READ TIMEOUT above
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "health_check_interval": HEALTH_CHECK_S,
    }
    if url.startswith("redis://"):
        options["connection_class"] = PackedConnection
    elif url.startswith("rediss://"):
        options["connection_class"] = PackedSSLConnection
    pool = aioredis.ConnectionPool.from_url(url, **options)
    return StoreClient.from_pool(pool)  # the client owns the pool: aclose() closes it
