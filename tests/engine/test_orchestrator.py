"""Orchestrator runs end to end: real worker, scheduler and projector processes, the API in
process, real git against a local bare remote, and a real "service" (a small HTTP server that
the catalog's `restart` command starts from its checkout and writes a pid file for). Only the
agent is a stand-in: the fake CLI of the execution tests, which edits what it is told."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.api.app import create_app
from cairn.api.auth import store_token
from cairn.commands.settings import Settings
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.engine.conftest import Engine, log_events, wait_for
from tests.engine.orchestrator_helpers import Service, seed_service, write_agent

TOKENS = {"viewer": "viewer-Token-0123456789abcdefghij", "ann": "ann-Token-0123456789abcdefghijkl",
          "bob": "bob-Token-0123456789abcdefghijklm"}  # fmt: skip


@pytest.fixture
def service(engine: Engine, tmp_path: Path) -> Any:
    found = Service(engine.shared, engine.tmp, seed_service(tmp_path / "git"))
    write_agent(engine.tmp / "bin" / "claude", engine.shared)
    engine.env.update({"CAIRN_GIT_AUTHOR_NAME": "Cairn Test",
                       "CAIRN_GIT_AUTHOR_EMAIL": "cairn@test"})  # fmt: skip
    engine.projector()
    engine.scheduler()
    found.start()
    yield found
    found.stop()


@pytest.fixture
async def api(settings: Settings, client: Any, keys: Keys, engine: Engine
              ) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    """The API in process, on the engine's store and data dir, with four eyes on."""
    four_eyes = replace(settings, four_eyes=True, data_dir=engine.tmp / "data")
    app = create_app(four_eyes, client)
    assert settings.admin_token
    await store_token(client, keys, settings.admin_token, "admin", "admin")
    for name, token in TOKENS.items():
        await store_token(client, keys, token, name, "viewer" if name == "viewer" else "operator")
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://cairn",
                                 headers=headers) as c:  # fmt: skip
        yield c


def as_(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


async def run_of(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    reply = await api.get(f"/api/orchestrator/runs/{run_id}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def until(api: httpx.AsyncClient, run_id: str, *states: str, timeout: float = 60
                ) -> dict[str, Any]:  # fmt: skip
    async def reached() -> bool:
        return (await run_of(api, run_id))["state"] in states

    await wait_for(reached, timeout=timeout, what=f"run {run_id} in {states}")
    return await run_of(api, run_id)


async def submit(api: httpx.AsyncClient, action: str, engine: Engine, who: str = "ann",
                 **more: Any) -> str:  # fmt: skip
    (engine.shared / "action").write_text(action)
    reply = await api.post("/api/orchestrator/runs", headers=as_(who), json={
        "service": "billing", "instruction": "The health check fails since the last deploy",
        "runtime": "claude", **more})  # fmt: skip
    assert reply.status_code in (201, 202), reply.text
    return str(reply.json()["id"])


async def test_runs_fix_roll_back_and_refuse_files_outside_the_allowed_paths(
    engine: Engine, service: Service, api: httpx.AsyncClient, store: EventStore, keys: Keys
) -> None:
    reply = await api.post("/api/orchestrator/services", json=service.spec())
    assert reply.status_code == 201, reply.text
    refused = await api.post("/api/orchestrator/services", headers=as_("ann"),
                             json=service.spec(name="other"))  # fmt: skip
    assert refused.status_code == 403
    engine.worker("w1", "claude,git,shell,orchestrator")
    assert service.health() == 500

    # A patch that fixes the service: built, restarted, verified; the commit is on the branch.
    fixed = await submit(api, "echo ok > app/config.txt", engine)
    run = await until(api, fixed, "succeeded", "failed", "rolled_back", "rollback_failed")
    assert run["state"] == "succeeded", (run["reason"], run["timeline"])
    assert service.health() == 200
    log = service.branch_log()
    assert f"Cairn-Run: {fixed}" in log[0] and "Approved-by: not required" in log[0]
    assert run["files"] == ["app/config.txt"]
    artifacts = (await api.get(f"/api/orchestrator/runs/{fixed}/artifacts")).json()["items"]
    names = {a["path"].split("/", 1)[-1] for a in artifacts}
    assert {"plan.md", "changes.patch", "run_summary.json", "patches/apply.patch",
            "service_logs.txt"} <= names  # fmt: skip
    assert all(a["sha256"] for a in artifacts)
    diff = await api.get(f"/api/orchestrator/runs/{fixed}/diff")
    assert "+ok" in diff.text
    listed = (await api.get("/api/orchestrator/services/billing")).json()
    assert listed["lastCheck"]["passed"] is True

    # A patch that breaks it: verify fails, the rollback reverts and restarts, healthy again.
    broken = await submit(api, "echo nope > app/config.txt", engine)
    run = await until(api, broken, "succeeded", "failed", "rolled_back", "rollback_failed")
    assert run["state"] == "rolled_back", run
    assert service.health() == 200
    log = service.branch_log()
    assert f"Cairn-Rollback: {broken}" in log[0] and f"Cairn-Run: {broken}" in log[1]
    assert "verify failed" in run["reason"]

    # A patch outside allowedPaths: failed before build, nothing committed.
    head = service.head()
    outside = await submit(api, "echo hi >> README.md; echo ok > app/config.txt", engine)
    run = await until(api, outside, "succeeded", "failed", "rolled_back", "rollback_failed")
    assert run["state"] == "failed" and "README.md" in run["reason"], run
    assert service.head() == head
    events = await log_events(store, keys)
    job = run["planJob"]
    assert not any(e.agg == job and e.type == "job.published" for e in events)
    # A symlink does not get around it either.
    linked = await submit(api, "ln -s ../README.md app/link.py", engine)
    run = await until(api, linked, "succeeded", "failed", "rolled_back", "rollback_failed")
    assert run["state"] == "failed" and "app/link.py" in run["reason"], run
    assert service.head() == head


async def test_a_protected_service_waits_for_another_operator_s_approval(
    engine: Engine, service: Service, api: httpx.AsyncClient
) -> None:
    assert (await api.post("/api/orchestrator/services",
                           json=service.spec(protected=True))).status_code == 201  # fmt: skip
    engine.worker("w1", "claude,git,shell,orchestrator")
    approved = await submit(api, "echo ok > app/config.txt", engine)
    run = await until(api, approved, "awaiting_approval", "failed")
    assert run["state"] == "awaiting_approval" and run["expiresAt"], run
    assert "+ok" in (await api.get(f"/api/orchestrator/runs/{approved}/diff")).text
    assert service.health() == 500  # nothing applied while it waits
    url = f"/api/orchestrator/runs/{approved}/approve"
    assert (await api.post(url, headers=as_("viewer"))).status_code == 403
    mine = await api.post(url, headers=as_("ann"))  # four eyes: the submitter may not
    assert mine.status_code == 403 and "four eyes" in mine.json()["detail"]
    assert (await api.post(url, headers=as_("bob"))).status_code in (200, 202)
    run = await until(api, approved, "succeeded", "failed", "rolled_back")
    assert run["state"] == "succeeded" and run["approvedBy"] == "bob", run
    assert "Approved-by: bob" in service.branch_log()[0]
    assert service.health() == 200

    head = service.head()
    rejected = await submit(api, "echo nope > app/config.txt", engine)
    await until(api, rejected, "awaiting_approval")
    reply = await api.post(f"/api/orchestrator/runs/{rejected}/reject", headers=as_("bob"),
                           json={"reason": "not during the freeze"})  # fmt: skip
    assert reply.status_code in (200, 202), reply.text
    run = await until(api, rejected, "failed")
    assert "not during the freeze" in run["reason"] and run["rejectedBy"] == "bob"
    assert service.head() == head and service.health() == 200


async def test_two_runs_on_one_service_never_overlap(
    engine: Engine, service: Service, api: httpx.AsyncClient, store: EventStore, keys: Keys
) -> None:
    assert (await api.post("/api/orchestrator/services", json=service.spec())).status_code == 201
    engine.worker("w1", "claude,git,shell,orchestrator", concurrency=2)
    engine.worker("w2", "claude,git,shell,orchestrator", concurrency=2)
    first = await submit(api, "echo ok > app/config.txt", engine)
    second = await submit(api, "echo ok > app/config.txt", engine, who="bob")
    waiting = await run_of(api, second)
    assert waiting["state"] == "planning" and waiting["waitingBehind"] == first
    for run_id in (first, second):
        run = await until(api, run_id, "succeeded", "failed", "rolled_back", "rollback_failed")
        assert run["state"] == "succeeded", (run["reason"], run["timeline"])
    events = await log_events(store, keys)
    spans = {}
    for run_id in (first, second):
        mine = [e for e in events if e.agg == run_id]
        started = next(e.ts for e in mine if e.type == "orun.planning")
        ended = next(e.ts for e in mine if e.type == "orun.finished")
        spans[run_id] = (started, ended)
    assert spans[first][1] <= spans[second][0], spans


async def test_a_worker_killed_during_restart_never_leaves_an_unverified_success(
    engine: Engine, service: Service, api: httpx.AsyncClient, store: EventStore, keys: Keys
) -> None:
    assert (await api.post("/api/orchestrator/services", json=service.spec())).status_code == 201
    (engine.shared / "hold").write_text("")
    first = engine.worker("w1", "claude,git,shell,orchestrator")
    run_id = await submit(api, "echo ok > app/config.txt", engine)
    run = await until(api, run_id, "applying", "failed")

    async def restarting() -> bool:
        events = await log_events(store, keys)
        return any(e.agg == run["applyJob"] and e.type == "job.step_started"
                   and e.data.get("step_id") == "restart" for e in events)  # fmt: skip

    await wait_for(restarting, timeout=60, what="the restart step")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    (engine.shared / "hold").unlink()
    engine.worker("w2", "claude,git,shell,orchestrator")
    run = await until(api, run_id, "succeeded", "failed", "rolled_back", "rollback_failed",
                      timeout=90)  # fmt: skip
    assert run["state"] in ("succeeded", "rolled_back"), run
    events = [e for e in await log_events(store, keys) if e.agg == run["applyJob"]]
    steps = [(e.data.get("step_id"), e.data.get("outcome"), e.data.get("index"))
             for e in events if e.type == "job.step_finished"]  # fmt: skip
    if run["state"] == "succeeded":
        last_restart = max(i for i, s in enumerate(steps) if s[0] == "restart")
        assert any(s[0] == "verify" and s[1] == "succeeded" for s in steps[last_restart:]), steps
        assert service.health() == 200
    assert sum(f"Cairn-Run: {run_id}" in c for c in service.branch_log()) == 1
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
