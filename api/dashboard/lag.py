"""How far each projection is behind the log (what `cairn status` prints), and how much
runnable work waits per capability signature: read functions for the workers page."""

from __future__ import annotations

from typing import Any

from cairn.api.context import Context
from cairn.domain.dispatch import eligible
from cairn.projections import layout
from cairn.projections.catalog import all_projections
from cairn.projections.generations import current_spaces
from cairn.streams.groups import group_lag


async def projection_lag(ctx: Context) -> list[dict[str, Any]]:
    """Per projection: events not yet applied (summed over partitions), pending, and the
    partitions that lag. A group that was never created counts the whole log."""
    keys, client = ctx.keys, ctx.client
    partitions = list(keys.all_partitions())
    async with client.pipeline(transaction=False) as pipe:
        for p in partitions:
            pipe.xlen(keys.log(p))
        lengths = dict(zip(partitions, await pipe.execute(), strict=True))
    groups = {p: await group_lag(client, keys.log(p)) for p in partitions}
    found = []
    for name in all_projections():
        spaces = await current_spaces(client, keys, name, partitions)
        total, pending, behind = 0, 0, []
        for p, space in spaces.items():
            info = groups[p].get(space.group, {})
            lag = info.get("lag")
            lag = int(lengths[p]) if lag is None and not info else int(lag or 0)
            total += lag
            pending += int(info.get("pending") or 0)
            if lag:
                behind.append(p)
        found.append({"projection": name, "lag": total, "pending": pending, "behind": behind})
    return found


async def queue_depths(
    ctx: Context, workers: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Queued jobs per capability signature (the runnable indexes), and which live workers
    can take each."""
    spaces = await ctx.queue.spaces()
    signatures = sorted(await ctx.queue.runnable_signatures(spaces))
    if not signatures:
        return []
    async with ctx.client.pipeline(transaction=False) as pipe:
        for sig in signatures:
            for space in spaces.values():
                pipe.zcard(layout.runnable(space, sig))
        sizes = await pipe.execute()
    rows = []
    step = len(spaces)
    for i, sig in enumerate(signatures):
        depth = sum(int(n) for n in sizes[i * step : (i + 1) * step])
        takers = [str(w["id"]) for w in workers if not w.get("stale")
                  and eligible(sig, w.get("capabilities", []))]  # fmt: skip
        if depth or takers:
            rows.append({"signature": sig, "depth": depth, "takers": takers})
    return rows
