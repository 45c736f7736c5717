"""How far each projection is behind the log (what `cairn status` prints), and how much
runnable work waits per capability signature: read functions for the workers page."""

from __future__ import annotations

from typing import Any

from cairn.api import metrics
from cairn.api.context import Context
from cairn.domain.jobs.dispatch import eligible
from cairn.projections.catalog import all_projections


async def projection_lag(ctx: Context) -> list[dict[str, Any]]:
    """Per projection: events not yet applied (summed over partitions), pending, and the
    partitions that lag (the figures /metrics and /readyz read)."""
    by_partition = await metrics.projection_lag(ctx)
    found = []
    for name in all_projections():
        lags = {p: lag for (n, p), lag in by_partition.items() if n == name}
        found.append({
            "projection": name, "lag": sum(lag.events for lag in lags.values()),
            "pending": sum(lag.pending for lag in lags.values()),
            "behind": [p for p, lag in sorted(lags.items()) if lag.events],
        })  # fmt: skip
    return found


async def queue_depths(ctx: Context, workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Queued jobs per capability signature (the runnable indexes, as /metrics reads them), and
    which live workers can take each."""
    rows = []
    for sig, (depth, _) in sorted((await metrics.queue_depths(ctx)).items()):
        takers = [str(w["id"]) for w in workers if not w.get("stale")
                  and eligible(sig, w.get("capabilities", []))]  # fmt: skip
        if depth or takers:
            rows.append({"signature": sig, "depth": depth, "takers": takers})
    return rows
