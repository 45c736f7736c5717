"""What every client shares of the driver: the Client type the other layers name, the
timeouts, and the translation of every driver error into Cairn's own, once, for every caller
(one server in connection.py, a cluster in cluster.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import (
    ClusterDownError,
    NoPermissionError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cairn.domain.errors import InfrastructureError, StoreUnavailable

Call = tuple[Sequence[Any], Sequence[Any]]  # a script call's keys and arguments
Client = aioredis.Redis  # what the other layers name; they never import redis themselves
# Errors after which the same call may succeed shortly: the server is down, restarting,
# loading its AOF (BusyLoadingError is a ConnectionError), stalled, or failing over.
PASSING = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, TryAgainError, ClusterDownError)
PASSING_REPLIES = ("LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY")
# NO READ TIMEOUT: it costs a timer per command (a fifth of a no-op job's client CPU), and a
# stalled server is waited out (its callers resume when it does); TCP keepalive finds a peer
# that is gone for good. Connecting is bounded.
CONNECT_TIMEOUT_S = 5.0
HEALTH_CHECK_S = 10  # a connection idle this long is pinged before use: no stale ones


def translate(error: BaseException) -> BaseException:
    """The Cairn error for a driver error (others are returned as they are)."""
    if isinstance(error, PASSING) or (
        isinstance(error, ResponseError) and str(error).startswith(PASSING_REPLIES)
    ):
        translated: InfrastructureError = StoreUnavailable(f"the store is unavailable: {error}")
    elif isinstance(error, NoScriptError):
        return error  # NOSCRIPT: no Cairn code sends scripts (streams/functions.py)
    elif isinstance(error, RedisError):
        translated = InfrastructureError(f"the store refused a command: {error}")
    else:
        return error
    translated.__cause__ = error
    return translated


def translated(error: RedisError) -> BaseException:
    """Only outages, refusals by the server's ACL (NOPERM: the user may not run that command or
    touch that key) and unexpected replies are translated; the replies streams/ acts on
    (NOGROUP, BUSYGROUP, NOSCRIPT) stay ResponseErrors for it to read."""
    always = ReadOnlyError | TryAgainError | NoPermissionError  # replies translated all the same
    if isinstance(error, ResponseError) and not isinstance(error, always):
        message = str(error)
        if not message.startswith(PASSING_REPLIES) and "ACL failure" not in message:
            return error  # a refusal inside a function is the ACL's as much as NOPERM is
    return translate(error)
