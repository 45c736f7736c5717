"""`cairn up`: the embedded server (unless CAIRN_REDIS_URL is set) and the Cairn processes as
children, restarted if one dies, all stopped cleanly on Ctrl-C or SIGTERM, and all ending with
it however it ends (a `kill -9` too). One `cairn up` a data directory; the API's port is checked
before anything starts, and the API is announced only once it answers.

On its embedded server each process connects as its own user (`cairn acl`'s users, made at each
start, their passwords in `<data dir>/acl/`), and Cairn's functions are loaded first, as the
server's admin: a worker's user cannot erase the log (docs/decisions/0007)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from cairn.api.auth import check_admin_token, has_admin_token, new_token, store_token
from cairn.api.cli.acl import KINDS, passwords_in, redis_url, setuser_args, user_name
from cairn.api.cli.address import answers_health, api_url, check_port_free
from cairn.api.cli.agents import agent_lines
from cairn.api.cli.datadir import StoreTarget, hold_data_dir, open_store
from cairn.api.cli.remote import write_cli_token
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.projections.projector import LIBRARIES
from cairn.streams.connection import connect
from cairn.streams.functions import load_all
from cairn.streams.keys import Keys
from cairn.streams.lifetime import PARENT_PID_VARIABLE, child_setup
from cairn.streams.server import EmbeddedServer, start_server

log = logging.getLogger("cairn.up")
HEALTHY_WITHIN_S = 60.0  # a cold start of the API on a busy two-core machine takes seconds
STOP_WITHIN_S = 40.0  # a worker lets running jobs finish for up to its --grace (30 s)


@dataclass
class Child:
    name: str
    argv: list[str]
    kind: str  # its store user's (api, projector, scheduler, worker)
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)
    env: dict[str, str] | None = None  # its own store URL, on the embedded server


def supervise(settings: Settings, *, workers: int = 1) -> int:
    """Run until a signal; returns the exit code."""
    if settings.admin_token:
        check_admin_token(settings.admin_token)
    url = api_url(settings.host, settings.port)
    with hold_data_dir(settings.data_dir) as held:
        held.record(api_url=url, redis_url=None)
        check_port_free(settings.host, settings.port)
        server: EmbeddedServer | None = None
        env = {**os.environ, PARENT_PID_VARIABLE: str(os.getpid())}
        # One machine, its owner's repositories: a local path is a repository here (a shared
        # worker sets CAIRN_ALLOW_LOCAL_REPOSITORIES=false, as it is by default elsewhere).
        env.setdefault("CAIRN_ALLOW_LOCAL_REPOSITORIES", "true")
        try:
            users: dict[str, str] = {}
            if not settings.redis_url:
                server = start_server(settings.data_dir)
                env["CAIRN_REDIS_URL"] = server.url
                _announce(server)
                users = asyncio.run(prepare_store(server, settings.prefix))
            _check_sandbox(settings)
            held.record(api_url=url, redis_url=env["CAIRN_REDIS_URL"])
            hint = "is CAIRN_REDIS_URL right?" if server is None else "see its server.log"
            store = StoreTarget(env["CAIRN_REDIS_URL"], hint)
            token = asyncio.run(_ensure_tokens(store, settings))
            if token:
                shown = f"cairn: created an admin token (shown once, stored hashed): {token}"
                print(shown, flush=True)
            first = (lambda: print(next_steps(settings, env), flush=True)) if token else None
            return _supervise(_children(settings, workers), env, settings, first, users)
        finally:
            if server is not None:
                server.stop()
                print("cairn: stopped", flush=True)


def _announce(server: EmbeddedServer) -> None:
    if server.moved_from is not None:
        print(
            f"cairn: port {server.moved_from}, where the embedded server listened last time, "
            f"is taken; it listens on {server.port} now",
            flush=True,
        )
    print(
        f"cairn: embedded server {server.binary} on {server.address} (password in "
        f"{(server.data_dir / 'server.password').resolve()}), data in {server.data_dir.resolve()}",
        flush=True,
    )


def _children(settings: Settings, workers: int) -> list[Child]:
    me = [sys.executable, "-m", "cairn.api.cli"]
    api = [*me, "api", "--host", settings.host, "--port", str(settings.port)]
    children = [Child("api", api, "api"), Child("projector", [*me, "projector"], "projector"),
                Child("scheduler", [*me, "scheduler"], "scheduler"),
                Child("pr-watch", [*me, "pr-watch"], "scheduler")]  # fmt: skip
    children += [
        Child(f"worker-{i + 1}", [*me, "worker", "--id", f"local-{i + 1}"], "worker")
        for i in range(workers)
    ]
    return children


def _supervise(children: list[Child], env: dict[str, str], settings: Settings,
               when_up: Callable[[], None] | None = None,
               users: dict[str, str] | None = None) -> int:  # fmt: skip
    for child in children:
        if users and child.kind in users:
            child.env = {**env, "CAIRN_REDIS_URL": users[child.kind]}
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for child in children:
            _spawn(child, child.env or env)
        if not _wait_healthy(children[0], settings, lambda: stopping):
            return 0  # stopped while starting
        url = api_url(settings.host, settings.port)
        print(f"cairn: API on {url} (Ctrl-C stops)", flush=True)
        if when_up is not None:
            when_up()
        while not stopping:
            for child in children:
                if child.process is not None and child.process.poll() is not None and not stopping:
                    _restart(child, child.env or env)
            time.sleep(0.2)
        return 0
    finally:
        _terminate_all([child.process for child in children if child.process is not None])


def _spawn(child: Child, env: dict[str, str]) -> None:
    # SIGTERM at the parent's death: each child then stops as on Ctrl-C.
    child.process = subprocess.Popen(child.argv, env=env, preexec_fn=child_setup(signal.SIGTERM))


def _wait_healthy(api: Child, settings: Settings, stopping: Callable[[], bool]) -> bool:
    """True once the API answers /healthz; an error if it exits or stays silent first."""
    url = api_url(settings.host, settings.port)
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    while not stopping():
        if api.process is not None and (code := api.process.poll()) is not None:
            raise CairnError(f"the API exited ({code}) before answering on {url}; see above")
        if answers_health(settings.host, settings.port):
            return True
        if time.monotonic() > deadline:
            raise CairnError(f"the API did not answer on {url} in {HEALTHY_WITHIN_S:g}s")
        time.sleep(0.1)
    return False


def _restart(child: Child, env: dict[str, str]) -> None:
    now = time.monotonic()
    child.restarts = [t for t in child.restarts if now - t < 60] + [now]
    code = child.process.returncode if child.process else None
    log.warning("%s exited (%s); restarting", child.name, code)
    if len(child.restarts) > 5:
        time.sleep(5)  # crash loop: slow down rather than spin
    _spawn(child, env)


def _terminate_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to all at once, then wait; SIGKILL to whoever outlives the deadline."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_WITHIN_S
    for process in processes:
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def next_steps(settings: Settings, env: dict[str, str]) -> str:
    """What a newcomer does next, said once, after the first start's token."""
    url = api_url(settings.host, settings.port)
    found = "; ".join(agent_lines(settings, env))
    return "\n".join([
        "cairn: next steps",
        f"  1. open {url} and sign in with the token above",
        "  2. give the worker an agent: `cairn agents install`, then sign one in (an API key "
        "such as ANTHROPIC_API_KEY, or `claude /login`, `codex login`) and restart `cairn up`; "
        f"found now: {found}",
        "  3. create a project with a repository: `cairn projects create NAME --repository "
        "PATH-OR-URL` (or Projects in the dashboard), then a task, and run it",
    ])  # fmt: skip


async def _ensure_tokens(store: StoreTarget, settings: Settings) -> str | None:
    """The admin token (returned when created now) and this machine's CLI token (a fresh one
    each start, replacing the last, left in the data directory for `cairn tasks` and such)."""
    token = await _ensure_admin_token(store, settings)
    client = await open_store(store)
    try:
        cli = new_token()
        await store_token(client, Keys(settings.prefix, settings.partitions), cli, "cli",
                          "operator")  # fmt: skip
        write_cli_token(settings.data_dir, cli)
    finally:
        await client.aclose()
    return token


async def _ensure_admin_token(store: StoreTarget, settings: Settings) -> str | None:
    """Store CAIRN_ADMIN_TOKEN's hash (replacing the old admin token), or create a token on the
    first start and return it."""
    client = await open_store(store)
    keys = Keys(settings.prefix, settings.partitions)
    try:
        if settings.admin_token:
            await store_token(client, keys, settings.admin_token, "admin", "admin")
            return None
        if await has_admin_token(client, keys):
            return None
        token = new_token()
        await store_token(client, keys, token, "admin", "admin")
        return token
    finally:
        await client.aclose()


async def prepare_store(server: EmbeddedServer, prefix: str) -> dict[str, str]:
    """As the embedded server's admin: Cairn's functions loaded, and a user per process kind
    (made again at each start, so a newer Cairn's rules apply); each kind's store URL."""
    passwords = passwords_in(server.data_dir / "acl")
    client = connect(server.url)
    try:
        await load_all(client, LIBRARIES)
        for kind in KINDS:
            await client.execute_command(  # type: ignore[no-untyped-call]
                "ACL", "SETUSER", user_name(kind, prefix),
                *setuser_args(kind, prefix, passwords[kind]),
            )
    finally:
        await client.aclose()
    return {kind: redis_url(kind, prefix, passwords[kind], server.address) for kind in KINDS}


def _check_sandbox(settings: Settings) -> None:
    """Said before the worker says it in its log: agent jobs need bubblewrap."""
    if settings.execution.sandbox.mode != "off" and shutil.which("bwrap") is None:
        print("cairn: bubblewrap is not installed, so the worker takes no agent jobs (they run "
              "in its sandbox): install it (Debian/Ubuntu: sudo apt-get install bubblewrap), "
              "or set CAIRN_SANDBOX=off to run agents unsandboxed", flush=True)  # fmt: skip
