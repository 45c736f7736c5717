"""The Redis key layout: the one place that knows how Cairn names its keys.

Every key of a partition carries the hash tag `{pNN}`, so one script may touch all of them on a
single server and on a cluster alike. Aggregate ids embed their partition, so a stream key is
computable from the id alone.
"""

from __future__ import annotations

import base64
import os
import re
import time
import zlib
from dataclasses import dataclass

_ID_RE = re.compile(r"^(?P<kind>[a-z]+)-(?P<part>\d{2,4})-(?P<rest>[0-9a-z]{16,40})$")


_last = [0, 0]  # (milliseconds, random part) of the last id made in this process


def new_ulid() -> str:
    """A 26-character, time-sortable identifier: 48 bits of milliseconds, 80 random bits, in
    lowercase base32hex (whose alphabet is in ASCII order, so text order is time order).
    Within one millisecond the random part is incremented, so ids made by one process sort
    in the order they were made (ties on created_at are broken by id)."""
    ms = int(time.time() * 1000)
    if ms <= _last[0]:
        ms, rand = _last[0], (_last[1] + 1) % (1 << 80)
    else:
        rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for increments
    _last[0], _last[1] = ms, rand
    raw = ms.to_bytes(6, "big") + rand.to_bytes(10, "big")
    return base64.b32hexencode(raw).decode()[:26].lower()


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names for one install (`prefix`) with `partitions` partitions."""

    prefix: str = "cairn"
    partitions: int = 16

    def partition_of(self, project: str) -> int:
        """The stable partition of a project (crc32, independent of the process)."""
        return zlib.crc32(project.encode()) % self.partitions

    def new_id(self, kind: str, project: str) -> str:
        """A fresh aggregate id that carries its project's partition."""
        return f"{kind}-{self.partition_of(project):02d}-{new_ulid()}"

    def partition_of_id(self, aggregate_id: str) -> int:
        """The partition embedded in an aggregate id; ValueError if it is not one of ours."""
        match = _ID_RE.match(aggregate_id)
        if match is None or int(match["part"]) >= self.partitions:
            raise ValueError(f"not a Cairn aggregate id: {aggregate_id!r}")
        return int(match["part"])

    def is_aggregate_id(self, aggregate_id: str) -> bool:
        try:
            self.partition_of_id(aggregate_id)
        except ValueError:
            return False
        return True

    def tag(self, partition: int) -> str:
        return f"{self.prefix}:{{p{partition:02d}}}"

    def log(self, partition: int) -> str:
        return f"{self.tag(partition)}:log"

    def partition_of_log(self, log_key: str) -> int:
        """The partition of a partition-log key (`<prefix>:{pNN}:log`)."""
        return int(log_key.rsplit("{p", 1)[1].split("}", 1)[0])

    def stream(self, aggregate_id: str) -> str:
        return f"{self.tag(self.partition_of_id(aggregate_id))}:s:{aggregate_id}"

    def output(self, job_id: str) -> str:
        """A job's live output stream, in its partition's hash tag (capped, not the log)."""
        return f"{self.tag(self.partition_of_id(job_id))}:out:{job_id}"

    def command(self, partition: int, command_id: str) -> str:
        return f"{self.tag(partition)}:cmd:{command_id}"

    def preview(self, partition: int, preview_id: str) -> str:
        """A PRD import's preview request, kept a while (TTL) so it can be committed by id."""
        return f"{self.tag(partition)}:preview:{preview_id}"

    def read_model(self, partition: int, projection: str, *parts: str) -> str:
        return ":".join((self.tag(partition), "rm", projection, *parts))

    def projection_lock(self, partition: int, projection: str) -> str:
        return f"{self.tag(partition)}:lock:{projection}"

    def tokens(self) -> str:
        return f"{self.prefix}:tokens"

    def dispatch(self, signature: str) -> str:
        return f"{self.prefix}:{{dispatch}}:q:{signature}"

    def dispatch_part(self, name: str) -> str:
        """Bookkeeping of dispatch (active jobs, counts, leader), in the dispatch slot."""
        return f"{self.prefix}:{{dispatch}}:{name}"

    def signatures(self) -> str:
        return f"{self.prefix}:{{dispatch}}:signatures"

    def system(self, name: str) -> str:
        return f"{self.prefix}:sys:{name}"

    def all_partitions(self) -> range:
        return range(self.partitions)
