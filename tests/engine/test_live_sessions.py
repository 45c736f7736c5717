"""Live sessions end to end: a real worker serving them (its agent step under a real
pseudo-terminal), the API behind a real uvicorn with a real WebSocket client, real git. The agent
is a stand-in that prints a line a second (and a secret) until a file the operator makes shows
up; then it finishes and its change is published."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from cairn.api.app import create_app
from cairn.api.auth import store_token
from cairn.api.http11 import H11Protocol
from cairn.commands.jobs.job import load_job
from cairn.commands.settings import Settings
from cairn.domain.jobs.job import Job
from cairn.streams.keys import Keys
from cairn.streams.server import free_port
from cairn.streams.store import EventStore
from tests.engine.conftest import Engine, submit, wait_for
from tests.worker.conftest import Seeded, run_git

SECRET = "s3cr3t-Live-0123456789-abcdefghijklmn"
AGENT = """#!/bin/sh
[ "$1" = "--version" ] && {{ echo "fake 0.0.0"; exit 0; }}
echo "the token is {secret}"
i=0
while [ ! -f FIXED ]; do
  i=$((i+1)); echo "line $i at $(date +%s.%N)"; sleep 1
  [ $i -gt 300 ] && exit 3
done
echo "saw FIXED"
echo "after the takeover" >> README.md
"""
TOKENS = {"viewer": ("viewer", ()), "ann": ("operator", ()), "root": ("admin", ()),
          "tess": ("operator", ("takeover",))}  # fmt: skip


def token(name: str) -> str:
    return f"{name}-Token-0123456789abcdefghijklmnop"


@pytest.fixture
async def api(settings: Settings, client: Any, keys: Keys, engine: Engine
              ) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:  # fmt: skip
    """The API on a real uvicorn (WebSockets), on the engine's store and data dir."""
    port = free_port()
    app = create_app(replace(settings, data_dir=engine.tmp / "data"), client)
    for name, (role, grants) in TOKENS.items():
        await store_token(client, keys, token(name), name, role, grants=grants)
    config = uvicorn.Config(app, port=port, log_level="warning", lifespan="off", http=H11Protocol)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
        yield c, port
    server.should_exit = True
    await serving


@pytest.fixture
def live_engine(engine: Engine, remote: Seeded) -> Engine:
    claude = engine.tmp / "bin" / "claude"
    claude.write_text(AGENT.format(secret=SECRET))
    claude.chmod(0o755)
    engine.env.update({"CAIRN_GIT_AUTHOR_NAME": "Cairn Test",
                       "CAIRN_GIT_AUTHOR_EMAIL": "cairn@test", "MY_SERVICE_TOKEN": SECRET})
    engine.projector()
    engine.scheduler()
    engine.worker("w1", "claude,git", CAIRN_LIVE_SESSIONS="true", CAIRN_LIVE_SESSION_IDLE_S="30")
    return engine


def by(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(name)}"}


async def open_session(api: httpx.AsyncClient, job_id: str, who: str, mode: str,
                       **more: Any) -> httpx.Response:  # fmt: skip
    return await api.post(f"/api/queue/jobs/{job_id}/live-sessions", headers=by(who),
                          json={"mode": mode, "ttl_s": 600, **more})  # fmt: skip


class Terminal:
    """A WebSocket client of a session, collecting what it shows."""

    def __init__(self, port: int, opened: dict[str, Any], origin: str | None = None) -> None:
        self.url = f"ws://127.0.0.1:{port}{opened['ws']}"
        self.origin = origin if origin is not None else f"http://127.0.0.1:{port}"
        self.seen = ""
        self.arrivals: list[tuple[float, str]] = []  # (when, what) of each message
        self.reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Terminal:
        self.ws = await websockets.connect(self.url, origin=self.origin)  # type: ignore[arg-type]
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self.arrivals.append((time.time(), str(message)))
                self.seen += str(message)
        except ConnectionClosed:
            pass

    async def type(self, text: str) -> None:
        await self.ws.send(json.dumps({"i": text}))

    async def shows(self, text: str, timeout: float = 10) -> None:
        async def there() -> bool:
            return text in self.seen

        shown = self.seen[-300:]
        await wait_for(there, timeout=timeout, what=f"{text!r} on the terminal: {shown!r}")

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        if self.reader is not None:
            await self.reader


async def running_job(store: EventStore, settings: Settings, remote: Seeded) -> str:
    payload = {"repository": str(remote.bare), "targetRuntime": "claude",
               "task": {"instructions": "wait for FIXED", "publish": {
                   "mode": "branch", "verificationSkipReason": {
                       "category": "no_tests_exist", "reason": "a stand-in agent"}}}}
    job_id = await submit(store, settings, "task", payload)

    async def step_running() -> bool:
        job = await load_job(store, job_id)
        return bool(job.steps) and job.steps[-1].get("status") == "running"

    await wait_for(step_running, timeout=60, what="the agent's step")
    return job_id


async def finished(store: EventStore, job_id: str, timeout: float = 90) -> Job:
    async def done() -> bool:
        return (await load_job(store, job_id)).status in ("succeeded", "failed", "dead_letter",
                                                           "cancelled")  # fmt: skip

    await wait_for(done, timeout=timeout, what=f"job {job_id} finished")
    return await load_job(store, job_id)


async def test_watch_take_over_and_hand_back(
    live_engine: Engine, api: tuple[httpx.AsyncClient, int], store: EventStore,
    settings: Settings, remote: Seeded,
) -> None:  # fmt: skip
    http, port = api
    job_id = await running_job(store, settings, remote)

    # Who may open what.
    assert (await open_session(http, job_id, "viewer", "watch")).status_code == 403
    refused = await open_session(http, job_id, "ann", "takeover")
    assert refused.status_code == 403 and "takeover grant" in refused.json()["detail"]

    # Watch: two watchers see the agent's lines within a second, the secret redacted.
    first = (await open_session(http, job_id, "ann", "watch")).json()
    second = (await open_session(http, job_id, "ann", "watch")).json()
    async with Terminal(port, first) as one, Terminal(port, second) as two:
        began = time.monotonic()
        await one.shows("line ", timeout=5)
        line = _last_line(one.seen)
        for later in (line + 1, line + 2, line + 3):
            await one.shows(f"line {later} at", timeout=3)
        assert time.monotonic() - began < 8
        # Each line is on the terminal within a second of the agent printing it.
        for n in (line + 1, line + 2, line + 3):
            printed = float(one.seen.split(f"line {n} at ", 1)[1].split()[0])
            arrived = next(t for t, text in one.arrivals if f"line {n} at" in text)
            assert arrived - printed < 1.0, (n, arrived - printed)
        await two.shows(f"line {line + 1}", timeout=3)
        for seen in (one.seen, two.seen):
            assert "[REDACTED]" in seen and SECRET not in seen

        # A used ticket, another session's ticket, a wrong origin: refused before any byte.
        for bad in ({**first}, {**first, "ws": first["ws"].replace(first["sessionId"],
                                                                     second["sessionId"])}):
            with pytest.raises(InvalidStatus):
                async with Terminal(port, bad):
                    pass
        fresh = (await http.post(f"/api/queue/jobs/{job_id}/live-sessions/{first['sessionId']}"
                                 "/tickets", headers=by("ann"))).json()  # fmt: skip
        with pytest.raises(InvalidStatus):
            async with Terminal(port, fresh, origin="https://evil.example"):
                pass

        # Takeover: the agent stops printing; the operator's shell works in the checkout.
        taken = await open_session(http, job_id, "tess", "takeover")
        assert taken.status_code == 201, taken.text
        other = await open_session(http, job_id, "root", "takeover")
        assert other.status_code == 409 and "one takeover at a time" in other.json()["detail"]
        async with Terminal(port, taken.json()) as shell:
            await asyncio.sleep(1.5)
            quiet_from = one.seen.count("line ")
            await shell.type("touch FIXED && echo took-$((6*7))\n")
            await shell.shows("took-42")
            await asyncio.sleep(2.5)
            assert one.seen.count("line ") <= quiet_from + 1, "the agent printed while held"
            assert "took-42" in one.seen  # a watcher sees the shell too
            handed = await http.post(
                f"/api/queue/jobs/{job_id}/live-sessions/{taken.json()['sessionId']}/hand-back",
                headers=by("tess"), json={"note": "made FIXED so it can go on"})
            assert handed.status_code == 200, handed.text
            await shell.shows("the session ended")
        await one.shows("saw FIXED", timeout=20)

    job = await finished(store, job_id)
    assert job.status == "succeeded", job.outcome
    told = [m["text"] for m in job.operator_messages]
    assert any("made FIXED so it can go on" in t and "FIXED" in t and "tess" in t for t in told)
    branch = str((job.publish or {}).get("branch"))
    files = run_git("ls-tree", "--name-only", "-r", branch, cwd=Path(str(remote.bare)))
    assert "FIXED" in files.split()
    ended = {s["session_id"]: s for s in job.live_ended}
    assert ended[taken.json()["sessionId"]]["why"] == "handed_back"
    casts = [a for a in job.artifacts if str(a["path"]).endswith(".cast")]
    assert len(casts) == 3 and all(a["sha256"] for a in casts)
    recording = (live_engine.tmp / "data" / "artifacts" / job_id)
    texts = "".join(p.read_text() for p in recording.rglob("*.cast"))
    assert "took-42" in texts and "touch FIXED" in texts and SECRET not in texts


@pytest.fixture
def quick_engine(engine: Engine) -> Engine:
    """A worker whose takeovers end after 3 s with nobody typing."""
    claude = engine.tmp / "bin" / "claude"
    claude.write_text(AGENT.format(secret=SECRET))
    claude.chmod(0o755)
    engine.env.update({"CAIRN_GIT_AUTHOR_NAME": "Cairn Test",
                       "CAIRN_GIT_AUTHOR_EMAIL": "cairn@test", "MY_SERVICE_TOKEN": SECRET})
    engine.projector()
    engine.scheduler()
    engine.worker("w1", "claude,git", CAIRN_LIVE_SESSIONS="true", CAIRN_LIVE_SESSION_IDLE_S="3",
                  CAIRN_LIVE_SESSIONS_MAX="52")
    return engine


async def test_ttl_and_silence_end_a_takeover_and_the_agent_goes_on(
    quick_engine: Engine, api: tuple[httpx.AsyncClient, int], store: EventStore,
    settings: Settings, remote: Seeded,
) -> None:  # fmt: skip
    http, port = api
    job_id = await running_job(store, settings, remote)
    watch = (await open_session(http, job_id, "ann", "watch")).json()
    async with Terminal(port, watch) as one:
        await one.shows("line ", timeout=5)
        for why in ("idle", "ttl"):
            taken = (await open_session(http, job_id, "root", "takeover", ttl_s=10)).json()
            async with Terminal(port, taken) as shell:
                if why == "ttl":  # typing keeps it from going idle, not past its time
                    for _ in range(6):
                        await shell.type("\n")
                        await asyncio.sleep(2)
                await shell.shows(f"the session ended: {why}", timeout=20)
            printed = one.seen.count("line ")
            await one.shows(f"line {_last_line(one.seen) + 1}", timeout=5)  # it goes on
            assert one.seen.count("line ") > printed
    job = await load_job(store, job_id)
    whys = [s["why"] for s in job.live_ended if s["mode"] == "takeover"]
    assert whys == ["idle", "ttl"]
    told = " ".join(m["text"] for m in job.operator_messages)
    assert "the takeover ended (idle)" in told and "They changed no file." in told
    await http.post(f"/api/queue/jobs/{job_id}/cancel", headers=by("root"), json={})


async def test_a_worker_killed_during_a_takeover_ends_the_session_and_the_lease_recovers_the_job(
    quick_engine: Engine, api: tuple[httpx.AsyncClient, int], store: EventStore,
    settings: Settings, remote: Seeded,
) -> None:  # fmt: skip
    http, port = api
    job_id = await running_job(store, settings, remote)
    taken = (await open_session(http, job_id, "root", "takeover", ttl_s=600)).json()
    async with Terminal(port, taken) as shell:
        await shell.type("echo here-$((1+1))\n")
        await shell.shows("here-2")
        quick_engine.processes["w1"].kill()
        quick_engine.processes["w1"].wait(10)
        await shell.shows("the session ended: worker_lost", timeout=30)
    quick_engine.worker("w2", "claude,git", CAIRN_LIVE_SESSIONS="true")

    async def again() -> bool:
        job = await load_job(store, job_id)
        return job.attempt >= 2 and job.status == "running"

    await wait_for(again, timeout=60, what="the job taken again by the lease")
    job = await load_job(store, job_id)
    assert job.live_sessions == []
    assert [s["why"] for s in job.live_ended] == ["worker_lost"]
    await http.post(f"/api/queue/jobs/{job_id}/cancel", headers=by("root"), json={})


def _last_line(seen: str) -> int:
    return int(seen.rsplit("line ", 1)[1].split()[0])


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


async def test_fifty_watchers_one_never_reading_and_a_recording_that_replays(
    quick_engine: Engine, api: tuple[httpx.AsyncClient, int], store: EventStore,
    settings: Settings, remote: Seeded,
) -> None:  # fmt: skip
    http, port = api
    job_id = await running_job(store, settings, remote)
    opened = [(await open_session(http, job_id, "ann", "watch")).json() for _ in range(50)]
    worker = quick_engine.processes["w1"].pid
    before = _rss_kb(worker)
    stuck = await websockets.connect(f"ws://127.0.0.1:{port}{opened[0]['ws']}",
                                     max_queue=1)  # never read  # fmt: skip
    readers = [Terminal(port, o) for o in opened[1:]]
    for reader in readers:
        await reader.__aenter__()
    try:
        await readers[0].shows("line ", timeout=10)
        target = _last_line(readers[0].seen) + 4
        began = time.monotonic()
        for reader in readers:
            await reader.shows(f"line {target}", timeout=15)
        assert time.monotonic() - began < 15
        assert _rss_kb(worker) - before < 40_000, (before, _rss_kb(worker))
    finally:
        for reader in readers:
            await reader.__aexit__(None, None, None)
        await stuck.close()
    await http.delete(f"/api/queue/jobs/{job_id}/live-sessions/{opened[1]['sessionId']}",
                      headers=by("ann"))  # fmt: skip

    async def recorded() -> bool:
        job = await load_job(store, job_id)
        return any(str(a["path"]).endswith(f"{opened[1]['sessionId']}.cast") for a in job.artifacts)

    await wait_for(recorded, timeout=15, what="the closed session's recording")
    cast = next((quick_engine.tmp / "data" / "artifacts" / job_id).rglob(
        f"{opened[1]['sessionId']}.cast"))  # fmt: skip
    header, *frames = [json.loads(line) for line in cast.read_text().splitlines()]
    assert header["version"] == 2 and header["width"] > 0
    times = [f[0] for f in frames]
    assert times == sorted(times) and {f[1] for f in frames} <= {"o", "i"}
    replayed = "".join(f[2] for f in frames if f[1] == "o")
    assert "line " in replayed and SECRET not in replayed
    await http.post(f"/api/queue/jobs/{job_id}/cancel", headers=by("root"), json={})


async def test_a_password_typed_is_not_recorded_and_cairn_cancel_ends_the_job_naming_the_operator(
    quick_engine: Engine, api: tuple[httpx.AsyncClient, int], store: EventStore,
    settings: Settings, remote: Seeded,
) -> None:  # fmt: skip
    http, port = api
    job_id = await running_job(store, settings, remote)
    taken = (await open_session(http, job_id, "tess", "takeover", ttl_s=600)).json()
    async with Terminal(port, taken) as shell:
        await shell.shows("ends the job instead")
        await shell.type("read -s pw && echo got-${#pw}\n")
        await asyncio.sleep(0.5)
        await shell.type("hunter2-typed\n")
        await shell.shows("got-13")
        await shell.type("cairn-cancel\n")
        await shell.shows("the session ended", timeout=15)
    job = await finished(store, job_id, timeout=30)
    assert job.status == "cancelled" and job.cancel_reason == "ended by tess from a takeover"
    cast = next((quick_engine.tmp / "data" / "artifacts" / job_id).rglob(
        f"{taken['sessionId']}.cast"))  # fmt: skip
    typed = "".join(f[2] for f in map(json.loads, cast.read_text().splitlines()[1:])
                    if f[1] == "i")  # fmt: skip
    assert "read -s pw" in typed and "cairn-cancel" in typed and "hunter2-typed" not in typed


async def test_a_worker_serves_so_many_sessions_and_says_so_past_them(
    quick_engine: Engine, api: tuple[httpx.AsyncClient, int], store: EventStore,
    settings: Settings, remote: Seeded,
) -> None:  # fmt: skip
    http, _ = api
    job_id = await running_job(store, settings, remote)
    for _ in range(53):
        assert (await open_session(http, job_id, "ann", "watch")).status_code == 201

    async def refused() -> bool:
        job = await load_job(store, job_id)
        return [s["why"] for s in job.live_ended] == ["worker_busy"]

    await wait_for(refused, timeout=15, what="the 53rd session refused by the worker")
    assert len((await load_job(store, job_id)).live_sessions) == 52
    await http.post(f"/api/queue/jobs/{job_id}/cancel", headers=by("root"), json={})
