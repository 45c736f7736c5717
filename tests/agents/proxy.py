"""A small forward proxy for the tests: it takes plain-HTTP requests in absolute form (and
CONNECT tunnels), resolves the hosts it is told about itself, and logs every request. A CLI
pointed at `http://<a name only the proxy knows>` reaches the model server only through it."""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Proxy:
    hosts: dict[str, str] = field(default_factory=dict)  # a name -> the address it stands for
    seen: list[str] = field(default_factory=list)  # "METHOD URL" of each request

    def __post_init__(self) -> None:
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                proxy._handle(self)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _address(self, host: str, port: int) -> tuple[str, int]:
        return self.hosts.get(host, host), port

    def _handle(self, handler: socketserver.StreamRequestHandler) -> None:
        head = handler.rfile.readline(65536).decode("latin-1")
        parts = head.split()
        if len(parts) < 3:
            return
        method, target, version = parts[0], parts[1], parts[2]
        headers = []
        while (line := handler.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
            headers.append(line)
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection(self._address(host, int(port)), timeout=30)
            handler.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pipe(handler.connection, upstream)
            return
        url = urlsplit(target)
        upstream = socket.create_connection(
            self._address(url.hostname or "", url.port or 80), timeout=120
        )
        path = url.path + (f"?{url.query}" if url.query else "")
        kept = [h for h in headers if not h.lower().startswith((b"proxy-", b"connection:"))]
        length = next((int(h.split(b":", 1)[1]) for h in headers
                       if h.lower().startswith(b"content-length:")), 0)  # fmt: skip
        # One request per connection upstream; its body from the buffered reader, whole.
        upstream.sendall(f"{method} {path or '/'} {version}\r\n".encode("latin-1")
                         + b"".join(kept) + b"Connection: close\r\n\r\n"
                         + handler.rfile.read(length))  # fmt: skip
        while data := upstream.recv(65536):
            handler.wfile.write(data)
        upstream.close()


def _pipe(client: socket.socket, upstream: socket.socket) -> None:
    """Copy both ways until either side closes."""
    sockets = [client, upstream]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 120)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (upstream if sock is client else client).sendall(data)
    except OSError:
        return
    finally:
        upstream.close()
