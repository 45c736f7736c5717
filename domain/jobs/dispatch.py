"""Capability routing: a job's required capabilities form a signature; a worker may take a
signature whose set is a subset of its own capabilities."""

from __future__ import annotations

from collections.abc import Iterable

from cairn.domain.priority import priority_sort_key


def signature(capabilities: Iterable[str]) -> str:
    """The sorted, de-duplicated capability set as one name, e.g. `claude+gh+git`."""
    return "+".join(sorted({c.strip().lower() for c in capabilities if c.strip()}))


def capabilities_of(sig: str) -> frozenset[str]:
    return frozenset(c for c in sig.split("+") if c)


def eligible(sig: str, worker_capabilities: Iterable[str]) -> bool:
    """A worker may take work of `sig` when it has every capability the signature names."""
    return capabilities_of(sig) <= {c.lower() for c in worker_capabilities}


def missing_capabilities(
    required: Iterable[str], workers: Iterable[Iterable[str]]
) -> list[str] | None:
    """None when some worker can take the job; else the capabilities the closest worker
    (the one missing fewest) lacks, so a person knows what to add."""
    needed = {c.lower() for c in required}
    best: set[str] | None = None
    for caps in workers:
        lacking = needed - {c.lower() for c in caps}
        if not lacking:
            return None
        if best is None or len(lacking) < len(best):
            best = lacking
    return sorted(needed if best is None else best)


def run_order_key(priority: int, created_at: str, job_id: str) -> str:
    """Runnable work sorts by priority (higher first), then created_at, then id."""
    return f"{priority_sort_key(priority)}|{created_at}|{job_id}"
