"""`cairn token create|list|revoke`: the API's bearer tokens, each with a name (the actor in
the log of everything it does), a role and an optional expiry; stored hashed, shown once."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson

from cairn.api.cli.store import keys_of, open_client
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError


def create(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.auth import create_token, parse_expiry

    expires = parse_expiry(args.expires) if args.expires else None

    async def run() -> str:
        client = await open_client(settings)
        try:
            return await create_token(client, keys_of(settings), args.name, args.role, expires,
                                      tuple(args.grant or ()))  # fmt: skip
        finally:
            await client.aclose()

    token = asyncio.run(run())
    print(token)  # alone on stdout, so `TOKEN=$(cairn token create ...)` works
    return 0


def list_all(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.auth import list_tokens

    async def run() -> list[dict[str, Any]]:
        client = await open_client(settings)
        try:
            return [r.view() for r in await list_tokens(client, keys_of(settings))]
        finally:
            await client.aclose()

    views = asyncio.run(run())
    if args.json:
        print(orjson.dumps(views).decode())
        return 0
    print(f"{'name':<24} {'role':<9} {'created':<21} {'expires':<21} state")
    for v in views:
        state = "expired" if v["expired"] else "live"
        print(f"{v['name']:<24} {v['role']:<9} {v['created']:<21} {v['expires'] or 'never':<21} "
              f"{state}")  # fmt: skip
    return 0


def revoke(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.auth import revoke_token

    async def run() -> int:
        client = await open_client(settings)
        try:
            return await revoke_token(client, keys_of(settings), args.name)
        finally:
            await client.aclose()

    if not asyncio.run(run()):
        raise CairnError(f"no token is named {args.name!r} (`cairn token list` shows them)")
    print(f"revoked {args.name}: the API refuses it from the next request on")
    return 0


def add_commands(command: Any) -> None:
    """`cairn token ...`, on the main parser's `command` maker."""
    from cairn.api.roles import ROLES

    token = command("token", create, "create, list and revoke the API's bearer tokens")
    sub = token.add_subparsers(required=True, metavar="ACTION", help="create, list or revoke")
    made = sub.add_parser("create", help="make a token (printed once, stored hashed)")
    made.set_defaults(run=create)
    made.add_argument("--name", required=True, help="who holds it: the actor in the log")
    made.add_argument("--role", required=True, choices=ROLES,
                      help="auditor (log and replays), viewer (read), operator (read and run "
                      "work), admin (everything)")  # fmt: skip
    made.add_argument("--grant", action="append", choices=["takeover"],
                      help="a right beyond the role: takeover (an operator may take a running "
                      "job over in a live session)")  # fmt: skip
    made.add_argument("--expires", help="a duration (90m, 12h, 30d, 8w) or a date (2027-01-31); "
                      "default never")  # fmt: skip
    listed = sub.add_parser("list", help="every token: name, role, created, expires")
    listed.set_defaults(run=list_all)
    listed.add_argument("--json", action="store_true", help="one JSON array")
    revoked = sub.add_parser("revoke", help="delete a token: refused from the next request")
    revoked.set_defaults(run=revoke)
    revoked.add_argument("name", help="the token's name")
