"""The real agent CLIs (the pinned claude, codex and gemini from npm) run through Cairn: a real
worker, scheduler and projector, real git against a local bare remote, and the scripted model
server standing in for the vendors. Each runtime writes the file the model asked for, commits
and pushes it, and reports the scripted usage; each way a CLI fails ends the way a user can
act on."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from cairn.commands.jobs.job import cancel_job
from cairn.commands.settings import Settings
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore
from tests.agents.clis import MODELS, RUNTIMES
from tests.agents.model_server import ModelServer, command, stall, status, text, write
from tests.agents.proxy import Proxy
from tests.engine.conftest import Engine, log_events, submit, wait_for
from tests.engine.test_execution import finished
from tests.worker.conftest import Seeded, run_git

pytestmark = pytest.mark.timeout(240)
SCRIPTED = {"tokens_in": 3600, "tokens_cached": 600, "tokens_out": 120}  # three turns' worth


@pytest.fixture
def agents(engine: Engine) -> Engine:
    engine.env["CAIRN_ALLOW_LOCAL_REPOSITORIES"] = "true"
    engine.projector()
    engine.scheduler()
    return engine


def payload(remote: Seeded, runtime: str, marker: str, *, mode: str = "branch",
            what: str = "Add hello.txt saying hello.") -> dict[str, Any]:  # fmt: skip
    return {"repository": str(remote.bare), "targetRuntime": runtime,
            "task": {"instructions": f"{what} {marker}", "runtime": {"model": MODELS[runtime]},
                     "publish": {"mode": mode}}}  # fmt: skip


def unique(name: str) -> str:
    return f"SCRIPT-{name}-{time.monotonic_ns()}"


async def step_events(store: EventStore, keys: Keys, job_id: str, kind: str) -> list[Any]:
    return [e for e in await log_events(store, keys) if e.agg == job_id and e.type == kind]


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_each_real_cli_writes_the_file_commits_and_pushes_it_and_reports_its_usage(
    agents: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded,
    model_server: ModelServer, runtime: str,
) -> None:  # fmt: skip
    marker = model_server.script(unique(runtime), [
        write("hello.txt", f"hello from {runtime}\n"), command("echo checked"),
        text("I added hello.txt."),
    ])  # fmt: skip
    agents.agent_worker("w", runtime, model_server, capabilities=f"{runtime},git")
    job = await finished(store, await submit(store, settings, "task",
                                             payload(remote, runtime, marker)), timeout=120)
    assert job.status == "succeeded", job.outcome
    assert job.publish is not None and job.publish["outcome"] == "PUBLISHED_BRANCH"
    branch = str(job.publish["branch"])
    shown = run_git("--git-dir", str(remote.bare), "show", f"{branch}:hello.txt")
    assert shown == f"hello from {runtime}\n"
    assert [s["status"] for s in job.steps] == ["succeeded"]
    usage = job.steps[0]["usage"]
    assert {k: usage[k] for k in SCRIPTED} == SCRIPTED
    assert (usage.get("cost_usd") is not None) == (runtime == "claude")  # claude prices itself
    assert job.usage is not None and job.usage["tokens_out"] == 120
    started = (await step_events(store, keys, job.id, "job.step_started"))[0].data
    # The names of what the CLI got from the worker are on the step; no value is.
    assert started["agent"]["cli"] == runtime and started["agent"]["signin"] in (
        "api key", "gateway")  # fmt: skip
    assert set(started["env"]) >= {"ANTHROPIC_BASE_URL", "OPENAI_BASE_URL",
                                   "GOOGLE_GEMINI_BASE_URL"} & set(started["env"])
    assert "test-key" not in json.dumps(started)
    # It ran in the agent sandbox (and codex's own, nested in it: CAIRN_CODEX_SANDBOX).
    assert started["sandbox"]["kind"] == "bubblewrap", started


async def test_a_login_file_alone_signs_claude_in(
    agents: Engine, store: EventStore, settings: Settings, remote: Seeded,
    model_server: ModelServer,
) -> None:  # fmt: skip
    """No API key anywhere: the worker user's `claude /login` credentials are copied into the
    job's HOME, the worker offers claude because of them, and the CLI signs in with them."""
    marker = model_server.script(unique("login"), [write("hello.txt", "hi\n"), text("Done.")])
    home = agents.tmp / "home-login"
    (home / ".claude").mkdir(parents=True)
    expires = int(time.time() * 1000) + 3_600_000
    (home / ".claude" / ".credentials.json").write_text(json.dumps({"claudeAiOauth": {
        "accessToken": "sk-ant-oat01-scripted-login", "refreshToken": "sk-ant-ort01-x",
        "expiresAt": expires, "scopes": ["user:inference"], "subscriptionType": "max"}}))
    (home / ".claude.json").write_text(json.dumps({"userID": "u", "projects": {"/x": {}}}))
    agents.agent_worker("login", "claude", model_server, vendor=False,
                        ANTHROPIC_BASE_URL=model_server.url, CAIRN_CLAUDE_MODEL="x")  # fmt: skip
    job = await finished(store, await submit(store, settings, "task",
                                             payload(remote, "claude", marker)), timeout=120)
    assert job.status == "succeeded", job.outcome
    seen = model_server.seen(marker)
    assert seen and all(r.headers.get("Authorization") == "Bearer sk-ant-oat01-scripted-login"
                        for r in seen)  # fmt: skip
    assert not any("x-api-key" in {k.lower() for k in r.headers} for r in seen)
    log = agents.output("login")
    assert "claude: " in log and "signs in with gateway" in log


async def test_the_base_url_and_the_proxy_reach_the_cli(
    agents: Engine, store: EventStore, settings: Settings, remote: Seeded,
    model_server: ModelServer,
) -> None:  # fmt: skip
    """The endpoint is a name only the proxy knows: the request reaches the scripted server
    only if both the base URL and HTTPS_PROXY got to the CLI."""
    proxy = Proxy(hosts={"models.cairn.test": "127.0.0.1"})
    try:
        marker = model_server.script(unique("proxy"), [write("hello.txt", "hi\n"), text("ok")])
        agents.agent_worker(
            "proxied", "claude", model_server, capabilities="claude,git",
            ANTHROPIC_BASE_URL=f"http://models.cairn.test:{model_server.port}",
            HTTPS_PROXY=proxy.url, HTTP_PROXY=proxy.url,
        )  # fmt: skip
        job = await finished(store, await submit(store, settings, "task",
                                                 payload(remote, "claude", marker)), timeout=120)
        assert job.status == "succeeded", job.outcome
        assert any("models.cairn.test" in seen for seen in proxy.seen)
        assert model_server.seen(marker)
    finally:
        proxy.stop()


async def test_a_missing_cli_fails_at_once_naming_the_package_and_the_install_command(
    agents: Engine, store: EventStore, settings: Settings, remote: Seeded,
    model_server: ModelServer,
) -> None:  # fmt: skip
    marker = model_server.script(unique("nocli"), [text("never asked")])
    # The worker is told it has claude, but its PATH has none.
    agents.start("nocli", "worker", "--id", "nocli", "--capabilities", "claude,git",
                 PATH=os.defpath)  # fmt: skip
    job = await finished(store, await submit(store, settings, "task",
                                             payload(remote, "claude", marker)), timeout=60)
    assert job.status == "failed" and job.attempt == 1  # not retried
    error = job.outcome["error"] if job.outcome else {}
    assert error["code"] == "cli_missing"
    assert "@anthropic-ai/claude-code@2.1.197" in error["message"]
    assert "cairn agents install claude" in error["message"]


@pytest.mark.parametrize("runtime", ["claude", "codex"])
async def test_a_refused_key_fails_without_a_retry_and_without_waiting_out_the_clis_retries(
    agents: Engine, store: EventStore, settings: Settings, remote: Seeded,
    model_server: ModelServer, runtime: str,
) -> None:  # fmt: skip
    marker = model_server.script(unique(f"401{runtime}"), [status(401, times=999)])
    agents.agent_worker("w401", runtime, model_server, capabilities=f"{runtime},git")
    started = time.monotonic()
    job = await finished(store, await submit(store, settings, "task",
                                             payload(remote, runtime, marker)), timeout=90)
    # claude alone would retry a 401 for three minutes, codex for seven seconds.
    assert time.monotonic() - started < 30
    assert job.status == "failed" and job.attempt == 1, job.outcome
    error = job.outcome["error"] if job.outcome else {}
    assert error["code"] == "auth_failed" and error["retry"] == "not retried"
    assert "401" in error["message"] and "check the key" in error["message"]


async def test_a_vendor_500_is_retried_by_cairn_and_the_next_attempt_succeeds(
    agents: Engine, store: EventStore, settings: Settings, remote: Seeded,
    model_server: ModelServer,
) -> None:  # fmt: skip
    """The operator caps claude's own retries (CAIRN_AGENT_ENV): the 500s outlast them, the
    attempt fails as a vendor error, and Cairn's retry succeeds."""
    marker = model_server.script(unique("500"), [status(500, times=2), write("hello.txt", "x\n"),
                                                 text("ok")])  # fmt: skip
    agents.agent_worker("w500", "claude", model_server, capabilities="claude,git",
                        CLAUDE_CODE_MAX_RETRIES="1", CAIRN_AGENT_ENV="CLAUDE_CODE_MAX_RETRIES")
    job = await finished(store, await submit(store, settings, "task",
                                             payload(remote, "claude", marker)), timeout=120)
    assert job.status == "succeeded" and job.attempt == 2, job.outcome


async def test_a_rate_limit_is_retried_after_the_delay_the_vendor_gave(
    agents: Engine, store: EventStore, settings: Settings, keys: Keys, remote: Seeded,
    model_server: ModelServer,
) -> None:  # fmt: skip
    turns = [status(429, retry_after=4, times=2), write("hello.txt", "x\n"), text("ok")]
    marker = model_server.script(unique("429"), turns)
    agents.agent_worker("w429", "claude", model_server, capabilities="claude,git",
                        CLAUDE_CODE_MAX_RETRIES="1", CAIRN_AGENT_ENV="CLAUDE_CODE_MAX_RETRIES")
    job = await finished(store, await submit(store, settings, "task",
                                             payload(remote, "claude", marker)), timeout=120)
    assert job.status == "succeeded" and job.attempt == 2, job.outcome
    failed = (await step_events(store, keys, job.id, "job.failed"))[0]
    assert failed.data["error"]["code"] == "rate_limited"
    # Policy backoff here is 0.2 s: the retry waited the vendor's 4 s instead.
    asked = [r.at for r in model_server.seen(marker)]
    assert asked[-1] - asked[1] >= 4 - 0.2


async def test_a_cli_without_a_sign_in_fails_once_naming_what_to_set(
    agents: Engine, store: EventStore, settings: Settings, remote: Seeded,
    model_server: ModelServer,
) -> None:  # fmt: skip
    marker = model_server.script(unique("unsigned"), [text("never asked")])
    agents.agent_worker("unsigned", "gemini", model_server, capabilities="gemini,git",
                        vendor=False, GOOGLE_GEMINI_BASE_URL=model_server.url)  # fmt: skip
    job = await finished(store, await submit(store, settings, "task",
                                             payload(remote, "gemini", marker)), timeout=90)
    assert job.status == "failed" and job.attempt == 1, job.outcome
    error = job.outcome["error"] if job.outcome else {}
    assert error["code"] == "no_signin" and "sign the CLI in" in error["message"]
    assert "\x1b" not in json.dumps(job.outcome)
    assert "gemini: " in agents.output("unsigned") and "no sign-in found" in agents.output(
        "unsigned")  # fmt: skip


async def test_a_model_that_stalls_is_ended_by_the_idle_timeout(
    agents: Engine, store: EventStore, settings: Settings, remote: Seeded,
    model_server: ModelServer,
) -> None:  # fmt: skip
    marker = model_server.script(unique("idle"), [stall(60, partial=True, times=999)])
    agents.agent_worker("idle", "codex", model_server, capabilities="codex,git",
                        CAIRN_IDLE_TIMEOUT_S="4")  # fmt: skip
    job_id = await submit(store, settings, "task", payload(remote, "codex", marker),
                          max_attempts=1)  # fmt: skip
    job = await finished(store, job_id, timeout=90)
    assert job.status == "dead_letter", job.outcome
    assert job.steps[0]["status"] == "timed_out"
    assert "idle timeout" in json.dumps(job.outcome)


async def test_cancel_while_the_model_stalls_mid_turn_ends_the_whole_cli(
    agents: Engine, store: EventStore, settings: Settings, remote: Seeded,
    model_server: ModelServer,
) -> None:  # fmt: skip
    marker = model_server.script(unique("cancel"), [stall(120, partial=True, times=999)])
    agents.agent_worker("cancel", "claude", model_server, capabilities="claude,git")
    job_id = await submit(store, settings, "task", payload(remote, "claude", marker))

    async def asked() -> bool:
        return bool(model_server.seen(marker))

    await wait_for(asked, timeout=60, what="the CLI's request")
    await asyncio.sleep(0.5)
    sent = time.monotonic()
    await cancel_job(store, job_id, actor="test", reason="enough")
    job = await finished(store, job_id, timeout=30)
    assert job.status == "cancelled"
    assert time.monotonic() - sent < 10  # the cancel grace is 5 s
    assert not _running_in(agents.tmp / "data" / "work" / job_id)  # none of its tree is left


def _running_in(folder: Path) -> list[int]:
    """Processes whose working directory is under `folder`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd.startswith(str(folder)):
                found.append(int(entry))
    return found
