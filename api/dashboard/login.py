"""Signing in with an API token, and out."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cairn.api.dashboard.render import (
    SECURITY_HEADERS,
    Form,
    action,
    done,
    read_form,
    render_plain,
    safe_next,
)
from cairn.api.dashboard.session import (
    close_session,
    csrf_matches,
    current_session,
    login_csrf,
    open_session,
    same_origin,
    set_login_nonce,
    token_owner,
)
from cairn.api.roles import AUDITOR, VIEWER, allows

FAILED_LOGIN_DELAY_S = 0.5  # slows guessing; a token has 256 bits, so this is belt and braces


async def login_page(request: Request) -> Response:
    if await current_session(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), 303)
    return await _login_form(request, "", 200, request.query_params.get("next"))


async def _login_form(request: Request, error: str, status: int, back: str | None) -> Response:
    csrf, fresh = await login_csrf(request)
    page = {
        "csrf": csrf,
        "error": error,
        "next": safe_next(back),
        "signed_out": request.query_params.get("notice") == "logged_out",
    }
    response = await render_plain(request, "login.html", page, status)
    if fresh:
        set_login_nonce(request, response, fresh)
    return response


async def login(request: Request) -> Response:
    form = await read_form(request)
    expected, fresh = await login_csrf(request)
    if fresh or not same_origin(request) or not csrf_matches(form.get("_csrf"), expected):
        expired = "The form expired; it has been renewed: try again."
        return await _login_form(request, expired, 403, form.get("next"))
    token = form.get("token").strip()
    owner = await token_owner(request, token) if token else None
    if owner is None:
        await asyncio.sleep(FAILED_LOGIN_DELAY_S)
        unknown = "That token is not known to this Cairn."
        return await _login_form(request, unknown, 401, form.get("next"))
    record, digest = owner
    back = safe_next(form.get("next"))
    if not allows(record.role, VIEWER) and back == "/tasks":
        back = "/audit"  # an auditor's token reads the log, not the read models
    response = RedirectResponse(back, 303)
    response.headers.update(SECURITY_HEADERS)
    await open_session(request, response, digest)
    return response


@action(needs=AUDITOR)  # anyone signed in may sign out
async def logout(request: Request, form: Form) -> Response:
    response = done(request, "/login", "logged_out")
    await close_session(request, response)
    return response
