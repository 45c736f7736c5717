"""Cairn's server-side code as Redis Functions (FUNCTION LOAD, FCALL), not scripts sent with
EVAL: the store then runs only code an admin loaded, and the users of the Cairn processes need
no EVAL (which runs any code a caller sends). docs/decisions/0007-agent-sandbox-and-store-users.md
says why.

Each layer that has Lua (streams/ here, projections/ for its apply step) declares a Library of
named bodies, written as scripts are (KEYS, ARGV). A library's name and its functions' names
carry the hash of its code: a new Cairn loads its own beside the old one's, so processes of
both versions run side by side during an upgrade, each calling its own.

A call that finds its function missing (a store that never had it, or lost it) loads the
library if the caller's user may (the API's, the admin's), and calls again; a user that may not
gets StoreUnavailable, which its process waits out, until the API (which loads every library
when it starts) or `cairn up` has loaded it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.exceptions import RedisError, ResponseError

from cairn.domain.errors import InfrastructureError, StoreUnavailable
from cairn.streams.driver import Call, Client, translate

MISSING = "Function not found"


@dataclass(frozen=True)
class Library:
    """Lua bodies, loaded together under one versioned library name."""

    layer: str
    bodies: Mapping[str, str]

    @property
    def version(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.bodies):
            digest.update(f"{name}\0{self.bodies[name]}\0".encode())
        return digest.hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"cairn_{self.layer}_{self.version}"

    def function(self, body: str) -> Function:
        if body not in self.bodies:
            raise KeyError(f"the {self.layer} library has no function {body!r}")
        return Function(self, f"cairn_{body}_{self.version}")

    @property
    def code(self) -> str:
        """The library as FUNCTION LOAD takes it: each body in a Lua function of its own."""
        parts = [f"#!lua name={self.name}"]
        for body, source in sorted(self.bodies.items()):
            name = self.function(body).name
            parts.append(f"local function {body}(KEYS, ARGV)\n{source}\nend")
            parts.append(f"redis.register_function('{name}', {body})")
        return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class Function:
    library: Library
    name: str

    def bind(self, client: Client) -> Bound:
        return Bound(client, self)


@dataclass(frozen=True)
class Bound:
    """A function and the client that calls it, called as a script object is:
    `await f(keys=[...], args=[...])`."""

    client: Client
    function: Function

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        (reply,) = await call_many(self.client, self.function, [(keys, args)])
        if isinstance(reply, BaseException):
            raise reply
        return reply


async def load(client: Client, library: Library) -> None:
    """Load `library` (on every primary of a cluster); loading it again changes nothing."""
    try:
        await client.function_load(library.code, replace=True)
    except InfrastructureError as e:
        if "no permissions" in str(e).lower():
            raise StoreUnavailable(
                f"the store does not have Cairn's functions ({library.name}) and this "
                "process's user may not load them: the API loads them when it starts "
                "(`cairn up` does too); waiting for it"
            ) from e
        raise


async def load_all(client: Client, libraries: Sequence[Library]) -> None:
    for library in libraries:
        await load(client, library)


async def call_many(client: Client, function: Function, calls: Sequence[Call]) -> list[Any]:
    """Call `function` once per (keys, args) in one pipeline; each call gets its own reply or
    error. If the store lacks the function it is loaded and only the calls it refused are sent
    again: the others ran, and must not run twice. A failure of that second send reaches only
    the refused calls."""
    replies = await _fcall_all(client, function, calls)
    again = [i for i, reply in enumerate(replies) if _missing(reply)]
    if again:
        try:
            await load(client, function.library)
            retried = await _fcall_all(client, function, [calls[i] for i in again])
        except (InfrastructureError, RedisError, OSError) as e:
            retried = [e] * len(again)
        for i, reply in zip(again, retried, strict=True):
            replies[i] = reply
    return [translate(r) if isinstance(r, RedisError) else r for r in replies]


def _missing(reply: Any) -> bool:
    return isinstance(reply, ResponseError) and MISSING in str(reply)


async def _fcall_all(client: Client, function: Function, calls: Sequence[Call]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.execute_command("FCALL", function.name, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


def _lua(name: str) -> str:
    return resources.files("cairn.streams").joinpath(f"{name}.lua").read_text()


# The streams layer's Lua: appends and reads of the log, dispatch, leases, presence, archiving.
STREAMS = Library("streams", {name: _lua(name) for name in (
    "append", "read", "dispatch", "settle", "hold_lease", "release_lease", "expire_worker",
    "archive",
)})  # fmt: skip
APPEND, READ = STREAMS.function("append"), STREAMS.function("read")
DISPATCH, SETTLE = STREAMS.function("dispatch"), STREAMS.function("settle")
HOLD_LEASE, RELEASE_LEASE = STREAMS.function("hold_lease"), STREAMS.function("release_lease")
EXPIRE_WORKER, ARCHIVE = STREAMS.function("expire_worker"), STREAMS.function("archive")
