"""Telemetry (`/telemetry`): job volume by type, failures by runtime and stage, publish outcome
rates (the counters behind GET /api/queue/telemetry), and throughput and queue wait over time
(the queue read model's per-minute counters), drawn as SVG charts with their numbers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.api.context import context
from cairn.api.dashboard.render import page, render
from cairn.api.jobs.queue import metric_group, usage_group

WIDTH, BAR_H, GAP, LABEL_W = 480, 18, 6, 150
SERIES_W, SERIES_H = 480, 150
FINISHED = ("succeeded", "failed", "dead_letter", "cancelled")


def bars(values: Mapping[str, float], unit: str = "", kind: str = "") -> dict[str, Any]:
    """A horizontal bar chart's geometry, largest first."""
    items = sorted(values.items(), key=lambda kv: -kv[1])
    top = max((v for _, v in items), default=0) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        rows.append({
            "label": label, "value": value, "y": i * (BAR_H + GAP),
            "w": max(1.0, (WIDTH - LABEL_W - 60) * value / top),
            "shown": f"{value:.0%}" if unit == "%" else f"{value:g}",
        })  # fmt: skip
    height = max(BAR_H, len(rows) * (BAR_H + GAP))
    return {"rows": rows, "height": height, "width": WIDTH, "label_w": LABEL_W, "kind": kind}


def series(points: list[tuple[str, float]], unit: str = "") -> dict[str, Any]:
    """A column chart over time: one bar per bucket, with a few axis labels."""
    top = max((v for _, v in points), default=0) or 1
    n = max(1, len(points))
    step = SERIES_W / n
    columns = [
        {"label": label, "value": value, "x": i * step, "w": max(1.0, step - 1),
         "h": (SERIES_H - 20) * value / top, "y": SERIES_H - 20 - (SERIES_H - 20) * value / top}
        for i, (label, value) in enumerate(points)
    ]  # fmt: skip
    ticks = [c for i, c in enumerate(columns) if i % max(1, n // 6) == 0]
    return {"columns": columns, "ticks": ticks, "top": top, "width": SERIES_W,
            "height": SERIES_H, "unit": unit}  # fmt: skip


def minutes(now: datetime, count: int) -> list[datetime]:
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=count - 1)
    return [start + timedelta(minutes=i) for i in range(count)]


def over_time(timeline: dict[str, dict[str, int]], now: datetime) -> dict[str, Any]:
    """Last hour by minute and last day by hour: finished jobs (throughput), submissions and
    the average queue wait of first claims."""

    def at(moment: datetime, kind: str) -> int:
        day = timeline.get(moment.strftime("%Y-%m-%d"), {})
        return day.get(f"{kind}|{moment.strftime('%H:%M')}", 0)

    hour = minutes(now, 60)
    day_hours = [now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23 - i)
                 for i in range(24)]  # fmt: skip

    def per_hour(kind: str) -> list[tuple[str, float]]:
        return [
            (h.strftime("%H:00"), float(sum(at(h + timedelta(minutes=m), kind) for m in range(60))))
            for h in day_hours
        ]

    finished_hour = [(m.strftime("%H:%M"), float(sum(at(m, k) for k in FINISHED))) for m in hour]
    submitted_hour = [(m.strftime("%H:%M"), float(at(m, "submitted"))) for m in hour]
    waits = []
    for m in hour:
        claims = at(m, "claims")
        waits.append((m.strftime("%H:%M"), at(m, "wait_ms") / claims / 1000 if claims else 0.0))
    hourly = {kind: per_hour(kind) for kind in FINISHED}
    finished_day = [
        (label, sum(hourly[kind][i][1] for kind in FINISHED))
        for i, (label, _) in enumerate(hourly["succeeded"])
    ]
    return {
        "throughput_hour": series(finished_hour, "jobs/min"),
        "submitted_hour": series(submitted_hour, "jobs/min"),
        "wait_hour": series(waits, "s"),
        "throughput_day": series(finished_day, "jobs/h"),
        "finished_last_hour": int(sum(v for _, v in finished_hour)),
        "submitted_last_hour": int(sum(v for _, v in submitted_hour)),
    }


@page
async def telemetry_page(request: Request) -> Response:
    queue = context(request).queue
    now = datetime.now(UTC)
    days = sorted({now.strftime("%Y-%m-%d"), (now - timedelta(days=1)).strftime("%Y-%m-%d")})
    metrics, timeline = await asyncio.gather(queue.metrics(), queue.timeline(days))
    publish = metric_group(metrics, "publish")
    total = sum(publish.values())
    page_data = {
        "volume": bars(metric_group(metrics, "submitted")),
        "legacy": metric_group(metrics, "legacy"),
        "failures_runtime": bars(metric_group(metrics, "failed_runtime"), kind="bad"),
        "failures_stage": bars(metric_group(metrics, "failed_stage"), kind="bad"),
        "publish": bars({k: v / total for k, v in publish.items()} if total else {}, "%", "ok"),
        "publish_counts": publish,
        "time": over_time(timeline, now),
        "now": now.strftime("%H:%M UTC"),
        "usage_runtime": usage_group(metrics, "usage_runtime"),
        "usage_project": usage_group(metrics, "usage_project"),
    }
    return await render(request, "telemetry.html", page_data)
