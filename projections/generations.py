"""Where read models live: each projection keeps a numbered generation of its keys per
partition (a rebuild fills the next one, then switches), and the current generations and each
partition's last applied position."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.streams.driver import Client
from cairn.streams.envelope import text
from cairn.streams.keys import Keys


@dataclass(frozen=True, slots=True)
class Space:
    """Where one projection generation of one partition lives."""

    keys: Keys
    projection: str
    partition: int
    generation: int

    def key(self, *parts: str) -> str:
        return self.keys.read_model(self.partition, self.projection, f"g{self.generation}", *parts)

    @property
    def group(self) -> str:
        return f"{self.projection}:g{self.generation}"

    @property
    def position_key(self) -> str:
        """The log position the space has applied up to."""
        return self.key("pos")

    @property
    def written_keys(self) -> str:
        """The set of every key the space wrote: dropping it unlinks exactly these."""
        return self.key("keys")


def generation_key(keys: Keys, projection: str, partition: int) -> str:
    return keys.read_model(partition, projection, "gen")


async def current_space(
    client: Client, keys: Keys, projection: str, partition: int
) -> Space:
    return (await current_spaces(client, keys, projection, [partition]))[partition]


async def current_spaces(
    client: Client, keys: Keys, projection: str, partitions: Sequence[int]
) -> dict[int, Space]:
    """The current space of each of `partitions`, in one round trip."""
    if not partitions:
        return {}
    raws = await client.mget([generation_key(keys, projection, p) for p in partitions])
    return {
        p: Space(keys, projection, p, int(raw or 1))
        for p, raw in zip(partitions, raws, strict=True)
    }


async def positions(
    client: Client, keys: Keys, projection: str, spaces: dict[int, Space] | None = None
) -> dict[int, str]:
    """Each partition's last applied log position for `projection` (in `spaces`, its current
    ones if not given)."""
    spaces = spaces or await current_spaces(client, keys, projection, keys.all_partitions())
    raws = await client.mget([space.position_key for space in spaces.values()])
    return {p: text(raw) if raw else "0-0" for p, raw in zip(spaces, raws, strict=True)}
