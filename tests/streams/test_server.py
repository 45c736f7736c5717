"""The embedded server: behind a password kept in its data directory, data not readable by
other users, the same port each start while it is free."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest
import redis

from cairn.domain.errors import InfrastructureError
from cairn.streams import server as server_module
from cairn.streams.server import EmbeddedServer, start_server


def test_the_server_refuses_a_client_without_its_password(server: EmbeddedServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(100).startswith(b"-NOAUTH")
    password = (server.data_dir / "server.password").read_text().strip()
    assert server.url == f"redis://:{password}@127.0.0.1:{server.port}/0"
    assert redis.Redis.from_url(server.url).ping()


def test_a_data_dir_keeps_its_port_and_its_files_to_itself(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    first = start_server(data)
    try:
        redis.Redis.from_url(first.url).set("k", "v")
    finally:
        first.stop()
    again = start_server(data)
    try:
        assert again.port == first.port and again.moved_from is None
        assert redis.Redis.from_url(again.url).get("k") == b"v"
    finally:
        again.stop()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "server.password").stat().st_mode) == 0o600
    files = [data / "server.log", data / "appendonlydir", *(data / "appendonlydir").iterdir()]
    assert [f.name for f in files if f.stat().st_mode & 0o077] == []

    with socket.create_server(("127.0.0.1", first.port)):  # someone else took the port
        moved = start_server(data)
    try:
        assert moved.port != first.port and moved.moved_from == first.port
        assert redis.Redis.from_url(moved.url).get("k") == b"v"
    finally:
        moved.stop()


def test_a_server_left_running_on_the_data_dir_is_not_joined_by_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "LEFTOVER_WAIT_S", 0.5)
    first = start_server(tmp_path)
    try:
        with pytest.raises(InfrastructureError, match=f"127.0.0.1:{first.port}"):
            start_server(tmp_path)
    finally:
        first.stop()
