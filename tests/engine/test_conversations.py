"""The real agent CLIs' runs as conversations: each step's transcript (file edits, commands and
their exit status, the final message, the scripted usage) as an artifact bound to the log; a
follow-up that resumes the agent's session, pushes a second commit onto the same branch and
updates the pull request instead of opening another; a follow-up whose session is gone, told
what happened instead; and an operator's message that reaches a running agent at once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cairn.commands.jobs.job import add_operator_message, load_job
from cairn.commands.jobs.task_runs import follow_up
from cairn.commands.settings import Settings
from cairn.domain.jobs.job import Job
from cairn.domain.jobs.transcript import Command, FileEdit, Message, UsageEntry, decode
from cairn.domain.tasks.states import Flags
from cairn.streams.store import EventStore
from tests.agents.clis import RUNTIMES, require_clis
from tests.agents.model_server import ModelServer, command, text, write
from tests.engine.conftest import Engine, submit, wait_for
from tests.engine.test_agents import payload, unique
from tests.engine.test_execution import finished
from tests.worker.conftest import FAKE_GH, Seeded, run_git

pytestmark = pytest.mark.timeout(300)
PR_URL = "https://github.com/octo/repo/pull/7"
TURN_IN = 1200  # the scripted server's tokens in per turn (tests/agents/model_server.py)


@pytest.fixture
def agents(engine: Engine) -> Engine:
    engine.env["CAIRN_ALLOW_LOCAL_REPOSITORIES"] = "true"
    engine.projector()
    engine.scheduler()
    return engine


def with_gh(engine: Engine) -> str:
    """A PATH with the pinned CLIs and a fake `gh` that records its calls."""
    folder = engine.tmp / "gh-bin"
    folder.mkdir(exist_ok=True)
    gh = folder / "gh"
    gh.write_text(FAKE_GH.format(python=sys.executable, record=str(engine.tmp / "gh.jsonl"),
                                 control=str(engine.tmp / "gh-control.json"), url=PR_URL))
    gh.chmod(0o755)
    return f"{folder}:{require_clis()}:{engine.env['PATH']}"


def gh_calls(engine: Engine) -> list[dict[str, Any]]:
    record = engine.tmp / "gh.jsonl"
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() \
        else []  # fmt: skip


def transcript(engine: Engine, job: Job, step: int = 1) -> tuple[list[Any], Path]:
    path = engine.tmp / "data" / "artifacts" / job.id / f"attempt-{job.attempt}" / \
        "transcript" / f"step-{step}.jsonl"  # fmt: skip
    return [decode(line) for line in path.read_bytes().splitlines()], path


def body_of(server: ModelServer, marker: str) -> str:
    return "\n".join(json.dumps(r.body) for r in server.seen(marker))


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_run_reads_as_its_conversation_and_a_follow_up_resumes_its_session(
    agents: Engine, store: EventStore, settings: Settings, remote: Seeded,
    model_server: ModelServer, runtime: str,
) -> None:  # fmt: skip
    first = model_server.script(unique(f"first-{runtime}"), [
        write("hello.txt", "hello\n"), command("echo ran"), text("Wrote hello.txt."),
    ])  # fmt: skip
    agents.agent_worker("w", runtime, model_server, capabilities=f"{runtime},git,gh",
                        PATH=with_gh(agents))  # fmt: skip
    asked = payload(remote, runtime, first, mode="pr")
    asked["task"]["publish"]["verificationSkipReason"] = {"category": "docs_only",
                                                          "reason": "a scripted file"}
    job = await finished(store, await submit(store, settings, "task", asked), timeout=150)
    assert job.status == "succeeded", job.outcome
    assert job.publish and job.publish["pr_url"] == PR_URL

    entries, path = transcript(agents, job)
    edits = [e for e in entries if isinstance(e, FileEdit)]
    assert [(e.path, e.added, e.removed) for e in edits] == [("hello.txt", 1, 0)]
    assert edits[0].hunk and "+hello" in edits[0].hunk
    ran = [e for e in entries if isinstance(e, Command) and "echo ran" in e.command]
    assert ran and ran[0].exit_status == 0, entries
    said = [e for e in entries if isinstance(e, Message) and e.role == "assistant"]
    assert said and said[-1].text == "Wrote hello.txt."
    [usage] = [e for e in entries if isinstance(e, UsageEntry)]
    assert (usage.tokens_in, usage.tokens_cached, usage.tokens_out) == (3600, 600, 120)
    # The artifact's bytes are bound to the log.
    [record] = [a for a in job.artifacts if a["name"] == "transcript/step-1.jsonl"]
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    session = job.steps[0].get("session_id")
    assert session, job.steps

    # "Now also do X": the same session goes on, on the same branch, into the same PR.
    second = model_server.script(unique(f"again-{runtime}"), [
        write("bye.txt", "bye\n"), text("Added bye.txt."),
    ])  # fmt: skip
    _, follow_id = await follow_up(store, job.id, f"Also add bye.txt. {second}", Flags(),
                                   actor="t")  # fmt: skip
    again = await finished(store, follow_id, timeout=150)
    assert again.status == "succeeded", again.outcome
    assert again.follows == job.id and again.resume_session == session
    assert (await load_job(store, job.id)).followed_by[0]["job_id"] == follow_id
    assert first in body_of(model_server, second)  # the earlier turns were in the request
    branch = str(job.publish["branch"])
    assert again.publish and again.publish["branch"] == branch
    assert (again.publish["outcome"], again.publish["pr_url"]) == ("PUBLISHED_PR", PR_URL)
    log = run_git("--git-dir", str(remote.bare), "log", "--format=%s", f"main..{branch}")
    assert len(log.splitlines()) == 2, log
    assert run_git("--git-dir", str(remote.bare), "show", f"{branch}:bye.txt") == "bye\n"
    assert len([c for c in gh_calls(agents) if c["argv"][:2] == ["pr", "create"]]) == 1
    entries, _ = transcript(agents, again)
    assert isinstance(entries[0], Message) and "Resuming" in entries[0].text, entries[0]
    assert again.usage is not None and again.usage["tokens_in"] == 2 * TURN_IN  # its own share


async def test_a_follow_up_whose_session_is_gone_says_so_and_runs_with_a_summary(
    agents: Engine, store: EventStore, settings: Settings, remote: Seeded,
    model_server: ModelServer,
) -> None:  # fmt: skip
    first = model_server.script(unique("gone"), [write("hello.txt", "hi\n"), text("Done.")])
    agents.agent_worker("w", "claude", model_server, capabilities="claude,git")
    job = await finished(store, await submit(store, settings, "task",
                                             payload(remote, "claude", first)), timeout=120)
    assert job.status == "succeeded", job.outcome
    shutil.rmtree(agents.tmp / "data" / "sessions" / job.id)
    second = model_server.script(unique("fresh"), [write("bye.txt", "bye\n"), text("Done.")])
    _, follow_id = await follow_up(store, job.id, f"Now bye.txt. {second}", Flags(), actor="t")
    again = await finished(store, follow_id, timeout=120)
    assert again.status == "succeeded", again.outcome
    entries, _ = transcript(agents, again)
    assert isinstance(entries[0], Message) and entries[0].role == "cairn"
    assert "could not be resumed" in entries[0].text and "session store is gone" in entries[0].text
    sent = body_of(model_server, second)
    assert "What the earlier run did" in sent and "hello.txt" in sent  # the summary and diff
    assert again.publish is not None
    assert run_git("--git-dir", str(remote.bare), "show",
                   f"{again.publish['branch']}:hello.txt") == "hi\n"  # on top of the first


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_message_reaches_a_running_agent_within_two_seconds(
    agents: Engine, store: EventStore, settings: Settings, remote: Seeded,
    model_server: ModelServer, runtime: str,
) -> None:  # fmt: skip
    busy = model_server.script(unique(f"busy-{runtime}"), [
        command("sleep 60"), text("Slept."),
    ])  # fmt: skip
    heard = model_server.script(unique(f"heard-{runtime}"), [
        write("note.txt", "noted\n"), text("Noted."),
    ])  # fmt: skip
    agents.agent_worker("w", runtime, model_server, capabilities=f"{runtime},git")
    job_id = await submit(store, settings, "task", payload(remote, runtime, busy))

    async def sleeping() -> bool:  # the CLI ran the command the model asked for
        return len(model_server.seen(busy)) >= 1 and \
            (await load_job(store, job_id)).status == "running"  # fmt: skip

    await wait_for(sleeping, timeout=120, what="the agent ran its sleep")
    await asyncio.sleep(2)  # it is well into the sleep
    sent = time.time()  # the server stamps requests with the wall clock
    await add_operator_message(store, job_id, f"Write note.txt instead. {heard}", actor="t")

    async def reached() -> bool:
        return bool(model_server.seen(heard))

    await wait_for(reached, timeout=30, what="the message reached the model")
    delay = model_server.seen(heard)[0].at - sent
    # gemini takes 1.3-1.8 s from its start to its first request (a 72 MB bundle), and the
    # resumed session is a new process: its bound is that much longer (docs/performance.md).
    limit = 2.0 if runtime != "gemini" else 4.0
    assert delay <= limit, f"the message took {delay:.2f} s"
    assert busy in body_of(model_server, heard)  # the same session went on
    job = await finished(store, job_id, timeout=120)
    assert job.status == "succeeded", job.outcome
    entries, _ = transcript(agents, job)
    notes = [(e.role, e.text) for e in entries if isinstance(e, Message)]
    assert any(role == "cairn" and "operator's message" in said for role, said in notes)
    assert ("operator", f"Write note.txt instead. {heard}") in notes
    assert job.steps[0]["usage"]["tokens_out"] >= 2 * 40  # both parts of the step counted
