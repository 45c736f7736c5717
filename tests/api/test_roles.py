"""Roles and tokens: every route in the OpenAPI document, called with every role and with every
kind of bad token, answers 401 or 403 as the route's declared role says, as problem+json; the
log names the token that did what; `cairn token` creates, lists and revokes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from cairn.api.app import create_app
from cairn.api.auth import create_token, parse_expiry, revoke_token, store_token
from cairn.api.roles import ROLES, SIGNED, allows
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError, ValidationFailed
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer
from cairn.streams.store import EventStore
from tests.api.test_cli import cairn

# Well-formed ids of this install (partition 00) that name nothing: a permitted call gets as
# far as the route (404, 422, ...), never 401 or 403.
ID = "0" * 26
PATH_VALUES = {"task_id": f"task-00-{ID}", "dep_id": f"task-00-{'1' * 26}",
               "job_id": f"job-00-{ID}", "run_id": f"job-00-{ID}", "import_id": f"import-00-{ID}",
               "proposal_id": f"proposal-00-{ID}", "path": "attempt-1/log.txt"}  # fmt: skip


class Tokens:
    def __init__(self) -> None:
        self.by_role: dict[str, str] = {}
        self.bad: dict[str, str | None] = {}


@pytest.fixture
async def app_tokens(
    settings: Settings, client: aioredis.Redis, keys: Keys
) -> AsyncIterator[tuple[httpx.AsyncClient, Tokens]]:
    tokens = Tokens()
    for role in ROLES:
        tokens.by_role[role] = await create_token(client, keys, f"{role}-1", role)
    expired = "expired-token-0123456789abcdefXYZ"
    await store_token(client, keys, expired, "old", "admin", expires=time.time() - 1)
    revoked = await create_token(client, keys, "gone", "admin")
    assert await revoke_token(client, keys, "gone") == 1
    tokens.bad = {"missing": None, "wrong": "not-a-token-0123456789abcdefXYZ",
                  "expired": expired, "revoked": revoked}  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(settings, client))
    async with httpx.AsyncClient(transport=transport, base_url="http://cairn") as http:
        yield http, tokens


def operations(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = []
    for path, methods in document["paths"].items():
        url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m[1], "x"), path)
        for method, op in methods.items():
            found.append((method.upper(), url, op["x-cairn-role"]))
    return found


async def call(http: httpx.AsyncClient, method: str, url: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    return await http.request(method, url, headers=headers, content=body, timeout=10)


async def test_every_route_with_every_role(
    app_tokens: tuple[httpx.AsyncClient, Tokens],
) -> None:
    http, tokens = app_tokens
    document = (await http.get("/openapi.json")).json()
    ops = operations(document)
    assert len(ops) >= 40
    assert {role for _, _, role in ops} == {*ROLES, SIGNED}  # each role guards some route
    for method, url, needed in ops:
        if needed == SIGNED:  # no token opens it, whatever its role: only a signature does
            for token in [*tokens.bad.values(), *tokens.by_role.values()]:
                r = await call(http, method, url, token)
                assert (r.status_code == 401 and "signed" in r.json()["detail"]) or \
                    "CAIRN_GITHUB_WEBHOOK_SECRET" in r.json()["detail"], (method, url, r.text)
            continue
        for kind, token in tokens.bad.items():
            r = await call(http, method, url, token)
            assert r.status_code == 401, (kind, method, url, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "unauthorized"
        for role, token in tokens.by_role.items():
            r = await call(http, method, url, token)
            if allows(role, needed):
                assert r.status_code not in (401, 403), (role, method, url, r.text)
            else:
                assert r.status_code == 403, (role, method, url, r.text)
                assert r.headers["content-type"] == "application/problem+json"
                body = r.json()
                assert body["code"] == "forbidden" and body["needed_role"] == needed


async def test_the_document_shows_each_route_s_role(
    app_tokens: tuple[httpx.AsyncClient, Tokens],
) -> None:
    http, _ = app_tokens
    document = (await http.get("/openapi.json")).json()
    for methods in document["paths"].values():
        for op in methods.values():
            assert op["x-cairn-role"] in (*ROLES, SIGNED)
            if op["x-cairn-role"] == SIGNED:
                assert op["description"].startswith("No token: signed") and not op["security"]
            else:
                assert op["description"].startswith(f"Role: {op['x-cairn-role']}")
            assert "403" in op["responses"] and "401" in op["responses"]
    tasks = document["paths"]["/api/v2/tasks"]
    assert tasks["post"]["x-cairn-role"] == "operator"
    assert tasks["get"]["x-cairn-role"] == "viewer"
    assert document["paths"]["/api/v2/tasks/{task_id}/events"]["get"]["x-cairn-role"] == "auditor"
    assert document["paths"]["/api/system/worker-pause"]["post"]["x-cairn-role"] == "admin"


async def test_the_log_names_the_token_that_did_it(
    app_tokens: tuple[httpx.AsyncClient, Tokens], store: EventStore
) -> None:
    http, tokens = app_tokens
    headers = {"Authorization": f"Bearer {tokens.by_role['operator']}"}
    body = {"title": "who did it", "task_type": "docs", "priority": 1}
    made = await http.post("/api/v2/tasks", headers=headers, json=body)
    assert made.status_code in (200, 201, 202), made.text
    [event] = await store.read_aggregate(made.json()["id"])
    assert event.actor == "operator-1"
    events = await http.get(f"/api/v2/tasks/{made.json()['id']}/events",
                            headers={"Authorization": f"Bearer {tokens.by_role['auditor']}"})
    assert events.status_code == 200 and events.json()["events"][0]["actor"] == "operator-1"


async def test_a_revoked_token_is_refused_at_its_next_request(
    app_tokens: tuple[httpx.AsyncClient, Tokens], client: aioredis.Redis, keys: Keys
) -> None:
    http, _ = app_tokens
    token = await create_token(client, keys, "short-lived", "viewer")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await http.get("/api/v2/projects", headers=headers)).status_code == 200
    await revoke_token(client, keys, "short-lived")
    assert (await http.get("/api/v2/projects", headers=headers)).status_code == 401


async def test_token_names_are_unique_and_plain(client: aioredis.Redis, keys: Keys) -> None:
    await create_token(client, keys, "ci", "operator")
    with pytest.raises(CairnError, match="exists"):
        await create_token(client, keys, "ci", "viewer")
    with pytest.raises(ValidationFailed):
        await create_token(client, keys, "two words", "viewer")
    with pytest.raises(ValueError, match="unknown role"):
        await create_token(client, keys, "x", "root")


def test_expiry_forms() -> None:
    now = 1_000_000.0
    assert parse_expiry("30d", now) == now + 30 * 86_400
    assert parse_expiry("90m", now) == now + 5_400
    assert parse_expiry("2999-01-31") > now
    for bad in ("soon", "1y", "2001-01-01"):
        with pytest.raises(ValidationFailed):
            parse_expiry(bad, time.time())


def test_cairn_token_create_list_revoke(server: EmbeddedServer, keys: Keys) -> None:
    made = cairn(server, keys, "token", "create", "--role", "viewer", "--name", "dash",
                 "--expires", "30d")  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("cairn_") and len(token) > 40
    listed = json.loads(cairn(server, keys, "token", "list", "--json").stdout)
    [dash] = [t for t in listed if t["name"] == "dash"]
    assert dash["role"] == "viewer" and dash["expires"] and not dash["expired"]
    assert token not in json.dumps(listed)  # only its hash is stored
    again = cairn(server, keys, "token", "create", "--role", "viewer", "--name", "dash")
    assert again.returncode == 2 and "exists" in again.stderr
    assert cairn(server, keys, "token", "revoke", "dash").returncode == 0
    assert "dash" not in cairn(server, keys, "token", "list").stdout
    gone = cairn(server, keys, "token", "revoke", "dash")
    assert gone.returncode == 2 and "no token is named" in gone.stderr
    bad = cairn(server, keys, "token", "create", "--role", "root", "--name", "x")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
