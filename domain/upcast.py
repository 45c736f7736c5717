"""Reading a stored event: its data is brought up to the current schema of its type by
upcasters, one schema step at a time, then decoded into the event's frozen Struct. A written
event is never changed; a new schema only adds an upcaster here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import msgspec

from cairn.domain.errors import CorruptStream, UnknownEvent

# The data of (type, schema n) as the data of schema n + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class EventKind(Protocol):
    TYPE: ClassVar[str]
    SCHEMA: ClassVar[int]


E = TypeVar("E", bound=EventKind)


def decode_event(
    kinds: Mapping[str, type[E]],
    upcasters: Mapping[tuple[str, int], Upcaster],
    type_: str,
    schema: int,
    data: dict[str, Any],
) -> E:
    """The event of `type_` from data written at `schema`; an unknown type or schema raises
    UnknownEvent, data that does not decode raises CorruptStream."""
    kind = kinds.get(type_)
    if kind is None:
        raise UnknownEvent(
            f"unknown event type {type_!r} (schema {schema}); known: {', '.join(sorted(kinds))}",
            type=type_,
            schema=schema,
        )
    while schema < kind.SCHEMA:
        upcast = upcasters.get((type_, schema))
        if upcast is None:
            raise UnknownEvent(
                f"{type_} schema {schema} cannot be read: no upcaster to schema {schema + 1} "
                f"(current schema {kind.SCHEMA})",
                type=type_,
                schema=schema,
                current_schema=kind.SCHEMA,
            )
        data, schema = upcast(data), schema + 1
    if schema != kind.SCHEMA:
        raise UnknownEvent(
            f"{type_} schema {schema} is newer than this version of Cairn reads (schema "
            f"{kind.SCHEMA}); upgrade it",
            type=type_,
            schema=schema,
            current_schema=kind.SCHEMA,
        )
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as e:
        raise CorruptStream(
            f"{type_} (schema {schema}) data does not decode: {e}", type=type_, schema=schema
        ) from e
