"""What operators collect: /metrics in Prometheus's format (this process's commands and
latencies, the install's lag, jobs, queue depth and wait, workers), /readyz that says not
ready while the store is down or a projection is far behind, and JSON logs carrying the
correlation id of the request's command."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from cairn.api import metrics as api_metrics
from cairn.api.app import create_app
from cairn.api.auth import create_token, store_token
from cairn.api.cli.logs import JsonFormatter, configure_logging
from cairn.commands.jobs.job import JobRequest, submit_job
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.projections.catalog import all_projections
from cairn.streams.connection import connect
from cairn.streams.correlation import current_correlation
from cairn.streams.keys import Keys
from cairn.streams.server import start_server
from cairn.streams.store import EventStore


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def wait_until(check: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_metrics_need_a_token_and_show_the_install(
    api: httpx.AsyncClient, settings: Settings, store: EventStore, client: aioredis.Redis,
    keys: Keys,
) -> None:  # fmt: skip
    assert (await api.get("/metrics", headers={"Authorization": ""})).status_code == 401
    viewer = await create_token(client, keys, "prometheus", "viewer")
    made = await api.post("/api/v2/tasks", json={"title": "t", "task_type": "docs", "priority": 1})
    assert made.status_code < 300
    refused = await api.post("/api/v2/tasks", json={})
    assert refused.status_code == 422
    for _ in range(3):
        await submit_job(store, JobRequest("noop", {}), settings.contract(), actor="t")

    async def queued() -> bool:
        r = await api.get("/metrics", headers={"Authorization": f"Bearer {viewer}"})
        return samples(r.text).get(("cairn_jobs", (("state", "queued"),))) == 3

    await wait_until(queued)
    r = await api.get("/metrics", headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    found = samples(r.text)
    ok = ("cairn_commands_total", (("command", "post_task"), ("outcome", "ok")))
    assert found[ok] == 1
    refused_once = ("cairn_commands_total", (("command", "post_task"), ("outcome", "refused")))
    assert found[refused_once] == 1
    assert found[("cairn_append_seconds_count", (("outcome", "ok"),))] >= 1
    assert found[("cairn_queue_depth", (("signature", "noop"),))] == 3
    assert found[("cairn_queue_wait_seconds", (("signature", "noop"),))] >= 0
    assert found[("cairn_store_up", ())] == 1
    assert found[("cairn_workers_alive", ())] == 0
    assert ("cairn_job_claims_total", ()) in found
    assert ("cairn_job_dead_letters_total", ()) in found
    lags = {k: v for k, v in found.items() if k[0] == "cairn_projection_lag_events"}
    assert len(lags) == len(all_projections()) * keys.partitions  # each, per partition
    assert all(v >= 0 for v in lags.values())
    assert (await api.get("/readyz")).json()["status"] == "ready"


async def test_readyz_waits_for_a_projection_far_behind(
    settings: Settings, client: aioredis.Redis, keys: Keys, store: EventStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(api_metrics, "READY_MAX_LAG", 5)
    for _ in range(6):  # six events in one partition, no projector running
        await submit_job(store, JobRequest("noop", {}), settings.contract(), actor="t")
    app = create_app(settings, client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://cairn") as http:  # fmt: skip
        r = await http.get("/readyz")
    assert r.status_code == 503 and r.json()["code"] == "catching_up"
    assert r.json()["lag"]["queue"] >= 5


async def test_readyz_and_metrics_while_the_store_is_down(tmp_path: Path) -> None:
    server = start_server(tmp_path / "redis", persist=False)
    settings = Settings(redis_url=server.url, prefix="down", partitions=2, data_dir=tmp_path)
    client = connect(server.url)
    try:
        app = create_app(settings, client)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://cairn") as http:  # fmt: skip
            assert (await http.get("/readyz")).status_code == 200
            token = "a-valid-Admin-token-0123456789abcdef"
            await store_token(client, Keys("down", 2), token, "admin", "admin")
            server.stop()
            r = await http.get("/readyz")
            assert r.status_code == 503 and r.json()["code"] == "store_unavailable"
            m = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert m.status_code == 503 and m.json()["code"] == "store_unavailable"
    finally:
        server.stop()
        await client.aclose()


async def test_json_logs_carry_the_correlation_id(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v2/projects", headers={"X-Correlation-Id": "req-42"})
    assert r.headers["x-correlation-id"] == "req-42"
    mine = await api.get("/api/v2/projects", headers={"X-Correlation-Id": "bad id\x01"})
    assert re.fullmatch(r"[0-9a-f]{32}", mine.headers["x-correlation-id"])
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("cairn.test.json")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    token = current_correlation.set("job-00-abc")
    try:
        log.warning("claimed %s", "it")
    finally:
        current_correlation.reset(token)
    log.info("plain")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["correlation_id"] == "job-00-abc" and first["message"] == "claimed it"
    assert first["level"] == "WARNING" and first["ts"].endswith("Z")
    assert "correlation_id" not in second
    with pytest.raises(CairnError, match="CAIRN_LOG_FORMAT"):
        configure_logging(log_format="xml")
