"""Making Redis clients: one place, so every process gets the same connection class (one
server here, a cluster in cluster.py), each raising Cairn's errors (driver.py), never the
driver's."""

from __future__ import annotations

from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection, SSLConnection
from redis.exceptions import RedisError

from cairn.streams.cluster import connect_cluster
from cairn.streams.driver import (
    CONNECT_TIMEOUT_S,
    HEALTH_CHECK_S,
    Client,
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
