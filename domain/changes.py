"""Typed field changes (task.updated, job.updated): made from a command's fields, applied
field by field. A field a change leaves out is UNSET and keeps its value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from msgspec import UnsetType

from cairn.domain.errors import ValidationFailed

C = TypeVar("C", bound=msgspec.Struct)
T = TypeVar("T")


def changes_from(kind: type[C], fields: Mapping[str, Any]) -> C:
    """`fields` as typed changes; a value of the wrong type (null for a field that cannot be
    emptied, say) or an unknown field is refused, naming the field."""
    try:
        return msgspec.convert(dict(fields), kind)
    except msgspec.ValidationError as e:
        reason, _, where = str(e).partition(" - at `$.")
        path = where.rstrip("`") or "body"
        if "got `null`" in reason:
            reason = "cannot be null; leave the field out to keep its value"
        raise ValidationFailed(f"{path}: {reason}", [{"path": path, "reason": reason}]) from e


def kept(new: T | UnsetType, old: T) -> T:
    """The value after a change: `new` if the change sets the field, else `old`."""
    return old if isinstance(new, UnsetType) else new
