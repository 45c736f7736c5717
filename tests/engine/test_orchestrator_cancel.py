"""Orchestrator runs ended by people and by time: a cancel during `restart` rolls the service
back and the run ends `cancelled`, and a plan nobody decides on expires."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from cairn.api.app import create_app
from cairn.api.auth import store_token
from cairn.commands.settings import Settings
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.engine.conftest import Engine, log_events, wait_for
from tests.engine.orchestrator_helpers import Service
from tests.engine.test_orchestrator import service, submit, until

__all__ = ["service"]  # the fixture, shared with test_orchestrator
FINAL = ("succeeded", "failed", "rolled_back", "rollback_failed", "cancelled")


@pytest.fixture
async def api(settings: Settings, client: Any, keys: Keys, engine: Engine
              ) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    """The API in process on the engine's store and data dir; plans wait 1 s for approval."""
    app = create_app(replace(settings, approval_timeout_s=1.0, data_dir=engine.tmp / "data"),
                     client)  # fmt: skip
    assert settings.admin_token
    await store_token(client, keys, settings.admin_token, "admin", "admin")
    await store_token(client, keys, "ann-Token-0123456789abcdefghijkl", "ann", "operator")
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://cairn",
                                 headers=headers) as c:  # fmt: skip
        yield c


async def test_a_cancel_during_restart_rolls_back_and_ends_cancelled(
    engine: Engine, service: Service, api: httpx.AsyncClient, store: EventStore, keys: Keys
) -> None:
    assert (await api.post("/api/orchestrator/services", json=service.spec())).status_code == 201
    engine.worker("w1", "claude,git,shell,orchestrator")
    fixed = await submit(api, "echo ok > app/config.txt", engine)
    assert (await until(api, fixed, *FINAL))["state"] == "succeeded"
    assert service.health() == 200
    head = service.head()

    (engine.shared / "hold").write_text("")
    tuned = await submit(api, "printf 'ok\\n# tuned\\n' > app/config.txt", engine)
    run = await until(api, tuned, "applying", *FINAL)

    async def restarting() -> bool:
        return any(e.agg == run["applyJob"] and e.type == "job.step_started"
                   and e.data.get("step_id") == "restart"
                   for e in await log_events(store, keys))  # fmt: skip

    await wait_for(restarting, timeout=60, what="the restart step")
    assert (await api.post(f"/api/orchestrator/runs/{tuned}/cancel")).status_code == 202
    (engine.shared / "hold").unlink()
    run = await until(api, tuned, *FINAL)
    assert run["state"] == "cancelled" and run["rolledBack"], run
    assert "rolled back" in run["reason"] and run["cancelRequestedBy"] == "admin"
    log = service.branch_log()
    assert f"Cairn-Rollback: {tuned}" in log[0] and f"Cairn-Run: {tuned}" in log[1]
    assert service.head() != head and service.health() == 200
    # The service is free again: the next run takes it.
    held = (await api.get("/api/orchestrator/services/billing")).json()
    assert held["holder"] is None and held["lastCheck"]["passed"] is True


async def test_a_plan_nobody_decides_on_expires(
    engine: Engine, service: Service, api: httpx.AsyncClient
) -> None:
    assert (await api.post("/api/orchestrator/services",
                           json=service.spec(protected=True))).status_code == 201  # fmt: skip
    engine.worker("w1", "claude,git,shell,orchestrator")
    head = service.head()
    waiting = await submit(api, "echo ok > app/config.txt", engine)
    run = await until(api, waiting, *FINAL, timeout=60)
    assert run["state"] == "failed" and "expired" in run["reason"], run
    assert run["rejectedBy"] == "cairn" and run["approvedBy"] is None
    events = (await api.get(f"/api/orchestrator/runs/{waiting}/events")).json()["items"]
    types = [e["type"] for e in events if e["aggregate"] == waiting]
    assert "orun.approval_requested" in types and types[-2:] == ["orun.rejected", "orun.finished"]
    assert service.head() == head and service.health() == 500
