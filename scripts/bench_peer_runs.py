"""Running the peer job queues of `bench_peers.py` on the no-op workload: each in its own virtual
environment, the PostgreSQL the durable ones need (Debian's packages, started in a folder of its
own), and one timed run each; a peer that fails is recorded and the next one runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from bench_children import Child, ChildExited, read_tail, say, start_child, stop_children
from bench_peers import COMMON, HARNESS, LANES, PEERS, Peer  # scripts/ is on the path

from cairn.streams.server import free_port

VENVS = Path.home() / ".cache" / "cairn-bench" / "venvs"


class PeerFailed(RuntimeError):
    pass


def ensure_venv(peer: Peer) -> Path:
    """The peer's own virtual environment, made and installed unless it already imports."""
    venv = VENVS / peer.name
    python = venv / "bin" / "python"
    if python.exists() and can_import(python, peer.imports):
        return venv
    say(f"  installing {' '.join(peer.packages)} into {venv} ...")
    # The same interpreter as Cairn's, so the comparison is not one between Python versions.
    make = subprocess.run(
        [sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True
    )
    if make.returncode != 0:
        raise PeerFailed(f"venv creation failed: {make.stderr.strip()[-500:]}")
    try:
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             *peer.packages],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise PeerFailed("pip install took over 15 minutes") from None
    if install.returncode != 0 or not can_import(python, peer.imports):
        errors = [line for line in install.stderr.splitlines() if "is ignored" not in line]
        raise PeerFailed(f"pip install {' '.join(peer.packages)} failed: {errors[-5:]}")
    return venv


def can_import(python: Path, modules: str) -> bool:
    probe = subprocess.run([str(python), "-c", f"import {modules}"], capture_output=True)
    return probe.returncode == 0


def read_version(venv: Path, peer: Peer) -> str:
    package = peer.packages[0].split("[")[0]
    code = f"from importlib.metadata import version; print(version({package!r}))"
    shown = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True)
    return shown.stdout.decode().strip()


def write_peer_files(peer: Peer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.py").write_text(COMMON + textwrap.dedent(peer.tasks))
    producer = COMMON + textwrap.dedent(peer.producer) + HARNESS.replace("{lanes}", str(LANES))
    (folder / "produce.py").write_text(producer)


@dataclass
class Postgres:
    """A PostgreSQL server the benchmark started (Debian's packages) in its own folder."""

    bin: Path
    folder: Path
    port: int
    as_user: list[str]  # the prefix that runs its tools as the `postgres` user when we are root

    def url(self, database: str) -> str:
        return f"postgresql://bench@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "bench",
             "-d", database, "-Atqc", statement], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise PeerFailed(f"psql {statement!r}: {done.stderr.strip()[-300:]}")
        return done.stdout.strip()

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"),
                        "-m", "fast", "stop"], capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


def postgres_bin() -> Path:
    """Debian's PostgreSQL (the newest installed), installed with apt-get when we are root."""
    for attempt in range(2):
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                          key=lambda p: int(p.parent.parent.name) if p.parent.parent.name
                          .isdigit() else 0)  # fmt: skip
        if versions:
            return versions[-1].parent
        if attempt or os.geteuid() != 0 or shutil.which("apt-get") is None:
            break
        say("  installing postgresql (apt-get) ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], env=env,
                       capture_output=True, timeout=900)  # fmt: skip
    raise PeerFailed("PostgreSQL is not installed (apt-get install postgresql)")


def start_postgres() -> Postgres:
    """initdb in a fresh folder and start PostgreSQL on a free port, as `postgres` when we are
    root (initdb refuses root). Commits are durable within a moment (synchronous_commit=off),
    as Cairn's AOF is (appendfsync everysec): a crash loses at most the last moment."""
    binary = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="cairn-bench-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    port = free_port()
    made = subprocess.run([*as_user, str(binary / "initdb"), "-D", str(folder / "data"), "-U",
                           "bench", "--auth=trust", "-E", "UTF8", "--no-sync"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if made.returncode != 0:
        raise PeerFailed(f"initdb failed: {made.stderr.strip()[-500:]}")
    options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c synchronous_commit=off "
               "-c max_connections=200")  # fmt: skip
    started = subprocess.run([*as_user, str(binary / "pg_ctl"), "-D", str(folder / "data"), "-o",
                              options, "-l", str(folder / "server.log"), "-w", "start"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    if started.returncode != 0:
        raise PeerFailed(f"PostgreSQL did not start: {read_tail(folder / 'server.log', 500)}")
    return Postgres(binary, folder, port, as_user)


def run_peer(
    peer: Peer, base_url: str, n: int, workdir: Path, postgres: Postgres | None = None
) -> tuple[float, str, int | None]:
    """jobs/s of n no-op jobs through `peer` (and its version): from the producer's first
    enqueue until the tasks' counter reaches n; and, for a peer on PostgreSQL, its database's
    growth per job (its history, on disk)."""
    venv = ensure_venv(peer)
    folder = workdir / peer.name
    write_peer_files(peer, folder)
    url = f"{base_url}/{peer.db}"
    key = f"bench:{peer.name}:done"
    counter = redis.Redis.from_url(url)
    counter.flushdb()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(BENCH_URL=url, BENCH_KEY=key, PYTHONPATH=str(folder),
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")  # fmt: skip
    if peer.postgres:
        if postgres is None:
            raise PeerFailed("needs PostgreSQL, which did not start")
        postgres.sql(f"DROP DATABASE IF EXISTS {peer.name}")
        postgres.sql(f"CREATE DATABASE {peer.name}")
        env["BENCH_PG"] = postgres.url(peer.name)
    if peer.setup:
        made = subprocess.run([str(venv / "bin" / peer.setup[0]), *peer.setup[1:]], env=env,
                              cwd=folder, capture_output=True, text=True, timeout=300)  # fmt: skip
        if made.returncode != 0:
            raise PeerFailed(f"{' '.join(peer.setup)} failed: {made.stderr.strip()[-500:]}")
    worker_argv = [str(venv / "bin" / peer.worker[0])]
    worker_argv += [arg.replace("{url}", url) for arg in peer.worker[1:]]
    say(f"{peer.name}: {n} no-op jobs, {peer.settings} ...")
    children = [start_child(f"{peer.name} worker", worker_argv, env, folder / "worker.log", folder)]
    try:
        children.append(
            start_child(f"{peer.name} producer", [str(venv / "bin" / "python"), "produce.py",
                        str(n)], env, folder / "producer.log", folder, finishes=True)
        )  # fmt: skip
        started = wait_peer(counter, f"{key}:started", children, timeout=120)
        size = database_size(postgres, peer)
        wait_count(counter, key, n, children, timeout=max(120, n / 10))
        finished = time.time()
        grown = database_size(postgres, peer)
        per_job = round((grown - size) / n) if grown is not None and size is not None else None
        return n / (finished - started), read_version(venv, peer), per_job
    except ChildExited as e:
        raise PeerFailed(str(e)) from None
    finally:
        # taskiq's worker child does not exit after a SIGTERM (taskiq-python/taskiq#646), so
        # peers get less time than Cairn's processes before the SIGKILL.
        stop_children(children, timeout=5)
        counter.close()


def database_size(postgres: Postgres | None, peer: Peer) -> int | None:
    if postgres is None or not peer.postgres:
        return None
    return int(postgres.sql("SELECT pg_database_size(current_database())", peer.name))


def wait_peer(counter: redis.Redis, key: str, children: Sequence[Child], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while (value := counter.get(key)) is None:
        for child in children:
            child.check()
        if time.monotonic() > deadline:
            raise PeerFailed(f"not warmed up in {timeout:.0f}s:\n{read_tail(children[0].log)}")
        time.sleep(0.05)
    return float(value)


def wait_count(
    counter: redis.Redis, key: str, n: int, children: Sequence[Child], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while int(counter.get(key) or 0) < n:
        if time.monotonic() - checked > 0.5:
            for child in children:
                child.check()
            checked = time.monotonic()
        if time.monotonic() > deadline:
            done = int(counter.get(key) or 0)
            raise PeerFailed(f"{done} of {n} jobs done after {timeout:.0f}s")
        time.sleep(0.002)


def run_peers(names: Sequence[str], base_url: str, n: int, workdir: Path) -> dict[str, Any]:
    """Every peer in turn; a failure is recorded and the next one runs."""
    rates: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    versions: dict[str, str] = {}
    disk: dict[str, int | None] = {}
    postgres, postgres_error = None, ""
    if any(peer.postgres and peer.name in names for peer in PEERS):
        try:
            postgres = start_postgres()
        except PeerFailed as e:
            postgres_error = str(e)
    try:
        for peer in PEERS:
            if peer.name not in names:
                continue
            try:
                if peer.postgres and postgres is None:
                    raise PeerFailed(postgres_error)
                rate, versions[peer.name], grown = run_peer(peer, base_url, n, workdir, postgres)
                rates[peer.name] = round(rate)
                if grown is not None:
                    disk[peer.name] = grown
            except Exception as e:  # a peer must never stop the benchmark
                rates[peer.name] = None
                errors[peer.name] = f"{type(e).__name__}: {e}"
                say(f"  {peer.name} failed: {errors[peer.name]}")
    finally:
        if postgres is not None:
            postgres.stop()
    return {"peers": rates, "peer_errors": errors, "peer_versions": versions,
            "peer_disk_bytes_per_job": disk}  # fmt: skip
