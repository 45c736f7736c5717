"""The writes of one projection batch, recorded as commands (the same calls as a redis-py
pipeline) and sent as the arguments of the fenced apply script, or as a MULTI by a rebuild."""

from __future__ import annotations

from typing import Any

from cairn.projections.generations import Space


class Writes:
    """The writes of one batch, recorded as commands (same calls as a redis-py pipeline) and
    sent as arguments of the fenced apply script."""

    def __init__(self) -> None:
        self.commands: list[list[Any]] = []

    def hset(self, key: str, mapping: dict[str, Any]) -> None:
        self.commands.append(["HSET", key, *(x for kv in mapping.items() for x in kv)])

    def zadd(self, key: str, mapping: dict[str, float]) -> None:
        self.commands.append(
            ["ZADD", key, *(x for m, score in mapping.items() for x in (score, m))]
        )

    def zrem(self, key: str, *members: str) -> None:
        self.commands.append(["ZREM", key, *members])

    def hincrby(self, key: str, field: str, amount: int) -> None:
        self.commands.append(["HINCRBY", key, field, amount])

    def sadd(self, key: str, *members: str) -> None:
        self.commands.append(["SADD", key, *members])

    def set(self, key: str, value: str) -> None:
        self.commands.append(["SET", key, value])

    def register(self, space: Space) -> None:
        """Record the keys written in the generation's key set, so dropping the generation
        unlinks exactly them (no keyspace scan)."""
        written = sorted({str(c[1]) for c in self.commands})
        if written:
            self.commands.append(["SADD", space.written_keys, *written])

    def args(self) -> list[Any]:
        flat: list[Any] = [len(self.commands)]
        for command in self.commands:
            flat += [len(command), *command]
        return flat
