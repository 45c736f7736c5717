"""`cairn up`: the embedded server (unless CAIRN_REDIS_URL is set) and the Cairn processes as
children, restarted if one dies, all stopped cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from cairn.api.auth import has_admin_token, new_token, store_token
from cairn.commands.settings import Settings
from cairn.streams.connection import connect
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer, start_server


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)


def run_up(settings: Settings, *, workers: int = 1) -> int:
    """Run until a signal; returns the exit code."""
    server: EmbeddedServer | None = None
    env = dict(os.environ)
    if not settings.redis_url:
        server = start_server(settings.data_dir)
        env["CAIRN_REDIS_URL"] = server.url
        print(
            f"cairn: embedded server {server.binary} on 127.0.0.1:{server.port}, "
            f"data in {settings.data_dir.resolve()}",
            flush=True,
        )
    url = env["CAIRN_REDIS_URL"]
    try:
        token = asyncio.run(_ensure_admin_token(url, settings))
        if token:
            print(f"cairn: created an admin token (shown once, stored hashed): {token}", flush=True)
        me = [sys.executable, "-m", "cairn.api.cli"]
        children = [
            Child("api", [*me, "api"]),
            Child("projector", [*me, "projector"]),
            Child("scheduler", [*me, "scheduler"]),
        ]
        children += [
            Child(f"worker-{i + 1}", [*me, "worker", "--id", f"local-{i + 1}"])
            for i in range(workers)
        ]
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for child in children:
            child.process = subprocess.Popen(child.argv, env=env)
        print(f"cairn: API on http://{settings.host}:{settings.port} (Ctrl-C stops)", flush=True)
        while not stopping:
            for child in children:
                if child.process is not None and child.process.poll() is not None and not stopping:
                    _restart(child, env)
            time.sleep(0.2)
        for child in children:
            if child.process is not None:
                _terminate(child.process)
    finally:
        if server is not None:
            server.stop()
            print("cairn: stopped", flush=True)
    return 0


def _restart(child: Child, env: dict[str, str]) -> None:
    now = time.monotonic()
    child.restarts = [t for t in child.restarts if now - t < 60] + [now]
    code = child.process.returncode if child.process else None
    print(f"cairn: {child.name} exited ({code}); restarting", file=sys.stderr, flush=True)
    if len(child.restarts) > 5:
        time.sleep(5)  # crash loop: slow down rather than spin
    child.process = subprocess.Popen(child.argv, env=env)


def _terminate(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _ensure_admin_token(url: str, settings: Settings) -> str | None:
    """Store CAIRN_ADMIN_TOKEN's hash, or create a token on the first start and return it."""
    client = connect(url)
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
