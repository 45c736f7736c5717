"""The HTTP/1.1 protocol the API is served with: uvicorn's h11 protocol, except for a request
whose header section passes MAX_HEADER_BYTES.

uvicorn answers such a request with a bare 400 and closes the connection at once; the client,
still sending its headers, meets a reset and never reads the answer. This protocol answers
431 problem+json and then reads (and drops) what the client still sends, within bounds, so
the answer arrives. Serve with `uvicorn.run(app, http=H11Protocol, ...)`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol as UvicornH11Protocol
from uvicorn.server import ServerState

from cairn.api.problems import problem

MAX_HEADER_BYTES = 65_536  # the request line and headers together
DRAIN_BYTES = 16 * 1_048_576  # at most this much of a refused request is read and dropped
DRAIN_S = 5.0  # for at most this long


class _Connection(h11.Connection):
    """An h11 connection that remembers why it refused the peer's data."""

    refusal: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as e:
            self.refusal = e
            raise


class H11Protocol(UvicornH11Protocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limit = config.h11_max_incomplete_event_size or MAX_HEADER_BYTES
        self.conn: _Connection = _Connection(h11.SERVER, limit)
        self.limit = limit
        self.draining: int | None = None  # bytes still to drop; None: not draining

    def data_received(self, data: bytes) -> None:
        if self.draining is None:
            super().data_received(data)
            return
        self.draining -= len(data)
        if self.draining <= 0:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        refusal = self.conn.refusal
        if refusal is None or refusal.error_status_hint != 431:
            super().send_400_response(msg)
            return
        detail = f"the request's headers are larger than {self.limit} bytes together"
        answer = problem(431, "headers_too_large", detail)
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(answer.body)).encode()),
            (b"connection", b"close"),
        ]
        reason = b"Request Header Fields Too Large"
        for event in (
            h11.Response(status_code=431, headers=headers, reason=reason),
            h11.Data(data=bytes(answer.body)),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        # Closing now, with the rest of the headers unread, would reset the connection and
        # the client would lose the answer: read and drop them until the client is done.
        self.draining = DRAIN_BYTES
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(DRAIN_S, self.transport.close)
