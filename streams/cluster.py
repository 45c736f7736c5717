"""The store on a Redis Cluster: `redis+cluster://[user:password@]host:port[,host:port...]/0`
(`redis+clusters://` over TLS, certificates as the URL's `ssl_*` options say). Every driver error
is translated to Cairn's as on one server (streams/driver.py).

Every key of a partition carries its hash tag, so a script, a MULTI or a multi-key command on
one partition runs in one slot. Reads that span partitions are the exception, and are split by
slot here, so no caller needs to know: MGET (independent values: read per slot, side by side)
and XREAD / XREADGROUP over several partition logs (a read per slot, side by side; a blocking
one returns as soon as one slot has entries). The dispatch keys share the `{dispatch}` slot by
design (docs/performance.md has what that costs)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

from cairn.domain.errors import InfrastructureError
from cairn.streams.driver import CONNECT_TIMEOUT_S, HEALTH_CHECK_S, Client, translated

POLL_S = 0.01  # how often a blocking group read over several slots looks again


class StoreCluster(RedisCluster):
    """A cluster client whose commands raise Cairn's errors and whose cross-partition reads are
    split by slot."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisError as e:
            raise translated(e) from e

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        return StoreClusterPipeline(self, transaction)  # type: ignore[abstract]

    async def mget(self, keys: Any, *args: Any) -> list[Any]:
        return await self.mget_nonatomic(keys, *args)

    async def xread(  # type: ignore[override]
        self, streams: Any, count: int | None = None, block: int | None = None
    ) -> Any:
        groups = _by_slot(streams)
        if len(groups) == 1:
            return await super().xread(streams, count=count, block=block)
        return await self._spread(lambda part, b: super(StoreCluster, self).xread(
            part, count=count, block=b), groups, block, cancel_safe=True)  # fmt: skip

    async def xreadgroup(  # type: ignore[override]
        self, groupname: Any, consumername: Any, streams: Any, count: int | None = None,
        block: int | None = None, noack: bool = False,
    ) -> Any:  # fmt: skip
        groups = _by_slot(streams)
        if len(groups) == 1:
            return await super().xreadgroup(groupname, consumername, streams, count=count,
                                            block=block, noack=noack)  # fmt: skip
        # A group read cancelled in flight could deliver entries nobody sees (they would wait in
        # the pending list): so never cancel one; poll the slots without blocking instead.
        return await self._spread(lambda part, b: super(StoreCluster, self).xreadgroup(
            groupname, consumername, part, count=count, block=b, noack=noack), groups, block,
            cancel_safe=False)  # fmt: skip

    async def _spread(
        self, read: Any, groups: list[dict[Any, Any]], block: int | None, cancel_safe: bool
    ) -> list[Any]:
        found = _merged(await asyncio.gather(*(read(part, None) for part in groups)))
        if found or block is None:
            return found
        if not cancel_safe:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + block / 1000
            while loop.time() < deadline:
                await asyncio.sleep(POLL_S)
                found = _merged(await asyncio.gather(*(read(part, None) for part in groups)))
                if found:
                    return found
            return []
        tasks = [asyncio.ensure_future(read(part, block)) for part in groups]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, InfrastructureError):
                    await task
        return _merged([task.result() for task in done if not task.cancelled()])


class StoreClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except RedisError as e:
            raise translated(e) from e


def _by_slot(streams: Any) -> list[dict[Any, Any]]:
    groups: dict[int, dict[Any, Any]] = {}
    for key, position in dict(streams).items():
        groups.setdefault(key_slot(key if isinstance(key, bytes) else str(key).encode()),
                          {})[key] = position  # fmt: skip
    return list(groups.values())


def _merged(replies: Sequence[Any]) -> list[Any]:
    return [item for reply in replies for item in (reply or [])]


def connect_cluster(url: str, max_connections: int | None = None) -> Client:
    """A cluster client for a `redis+cluster://` URL (typed as the one-server client: it
    answers the same commands)."""
    parts = urlsplit(url)
    nodes = []
    for address in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = address.rpartition(":")
        nodes.append(ClusterNode(host or "localhost", int(port or 6379)))
    user, _, password = parts.netloc.rsplit("@", 1)[0].partition(":") if "@" in parts.netloc \
        else ("", "", "")  # fmt: skip
    options: dict[str, Any] = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "redis+clusters":
        options["ssl"] = True
    client = StoreCluster(
        startup_nodes=nodes, username=unquote(user) or None, password=unquote(password) or None,
        max_connections=max_connections or 100, socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=None, health_check_interval=HEALTH_CHECK_S, **options,
    )  # fmt: skip
    return cast(Client, client)
