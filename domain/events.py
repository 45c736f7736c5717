"""What every event is: a frozen fact in the past tense whose class names its type and schema.
Each aggregate kind's events derive from it (`TaskEvent`, `JobEvent`, ...); written, an event is
never changed, and old schemas are read through upcasters (upcast.py)."""

from __future__ import annotations

from typing import ClassVar

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = ""
    SCHEMA: ClassVar[int] = 1
