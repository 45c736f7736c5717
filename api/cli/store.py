"""How a CLI command reaches the install's store: CAIRN_REDIS_URL, else the store of the
`cairn up` that runs with the data directory."""

from __future__ import annotations

from cairn.api.cli.datadir import find_store, open_store
from cairn.commands.settings import Settings
from cairn.streams.driver import Client
from cairn.streams.keys import Keys


async def open_client(settings: Settings) -> Client:
    """A client of the install's store, checked with a PING (one clear line if it fails)."""
    return await open_store(find_store(settings))


def keys_of(settings: Settings) -> Keys:
    return Keys(settings.prefix, settings.partitions)
