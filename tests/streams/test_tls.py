"""TLS to the store: `rediss://` with the CA in the URL (`ssl_ca_certs=`), checked against a
self-signed certificate made here. The embedded valkey is built without TLS ("Failed finding
TLS support"), so TLS is terminated in front of it by a TLS server in this test (as stunnel or a
cloud proxy would): what is tested is Cairn's side, the client: handshake, certificate and
host-name checks, and every command over TLS, from this process and from a CLI process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest

from cairn.domain.errors import InfrastructureError
from cairn.streams.connection import connect
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer, free_port
from cairn.streams.store import EventStore, NewEvent, StreamWrite


def make_certificate(
    folder: Path, names: str = "DNS:localhost,IP:127.0.0.1"
) -> tuple[Path, Path]:
    """A self-signed certificate for `names` (localhost and 127.0.0.1), with its key."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=cairn-test", "-addext", f"subjectAltName={names}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@contextlib.asynccontextmanager
async def tls_front(server: EmbeddedServer, cert: Path, key: Path) -> AsyncIterator[int]:
    """A TLS server on a free port that passes each connection on to `server`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    port = free_port()
    front = await asyncio.start_server(serve, "127.0.0.1", port, ssl=context)
    async with front:
        yield port


def tls_url(server: EmbeddedServer, port: int, ca: Path | None, host: str = "localhost") -> str:
    url = f"rediss://:{quote(server.password, safe='')}@{host}:{port}/0"
    return f"{url}?ssl_ca_certs={quote(str(ca))}" if ca else url


async def test_the_store_over_tls(server: EmbeddedServer, keys: Keys, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    async with tls_front(server, cert, key) as port:
        client = connect(tls_url(server, port, cert))
        try:
            assert await client.ping()
            store = EventStore(client, keys)
            task_id = keys.new_id("task", "tls")
            write = StreamWrite(task_id, 0, [NewEvent("task.created", {"title": "over tls"})])
            await store.append(keys.partition_of_id(task_id), [write])
            [event] = await store.read_aggregate(task_id)
            assert event.data == {"title": "over tls"}

            env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
            env.update(CAIRN_REDIS_URL=tls_url(server, port, cert), CAIRN_PREFIX=keys.prefix,
                       CAIRN_PARTITIONS=str(keys.partitions))  # fmt: skip
            tail = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cairn.api.cli", "tail", "--json", env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(tail.communicate(), 60)
            assert tail.returncode == 0, err
            assert b'"over tls"' in out
        finally:
            await client.aclose()


@pytest.mark.parametrize("case", ["no CA", "wrong host"])
async def test_a_certificate_that_does_not_check_out_is_refused(
    server: EmbeddedServer, tmp_path: Path, case: str
) -> None:
    # Without the CA the self-signed certificate is unknown; a certificate for another name
    # fails the host-name check.
    names = "DNS:localhost,IP:127.0.0.1" if case == "no CA" else "DNS:elsewhere.example"
    cert, key = make_certificate(tmp_path, names)
    async with tls_front(server, cert, key) as port:
        url = tls_url(server, port, None if case == "no CA" else cert)
        client = connect(url)
        try:
            with pytest.raises(InfrastructureError, match=r"(?i)certificate|hostname|mismatch"):
                await client.ping()
        finally:
            await client.aclose()
