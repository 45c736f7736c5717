"""Store connections: no read timeout of their own (a blocking read may wait as long as its
caller asks), and driver errors reach callers as Cairn's."""

from __future__ import annotations

import time

import pytest

from cairn.domain.errors import StoreUnavailable
from cairn.streams.connection import connect
from cairn.streams.server import EmbeddedServer, free_port


async def test_a_blocking_read_may_wait_longer_than_the_drivers_default(
    server: EmbeddedServer,
) -> None:
    # redis-py's default read timeout is 5 s: an event stream that waits 15 s for news died.
    client = connect(server.url)
    try:
        started = time.monotonic()
        reply = await client.xread({"cairn-test:nothing": "$"}, block=6000)
        assert reply in (None, [], {}) and time.monotonic() - started >= 5.9
    finally:
        await client.aclose()


async def test_an_unreachable_store_is_store_unavailable() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(StoreUnavailable):
            await client.ping()
    finally:
        await client.aclose()
