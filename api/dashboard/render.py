"""How dashboard pages are served: Jinja2 templates, the session every page needs, CSRF on
every post, form bodies, errors shown at the fields they name, and a real 404 page."""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from cairn.api.context import context, position_pattern, read_limited
from cairn.api.dashboard.session import (
    CSRF_HEADER,
    Session,
    csrf_matches,
    current_session,
    same_origin,
)
from cairn.api.problems import problem, problem_from
from cairn.api.roles import OPERATOR, VIEWER, allows
from cairn.domain.errors import CairnError, NotFound, ValidationFailed
from cairn.streams.registry import Registry

PACKAGE = Path(str(resources.files("cairn.api.dashboard")))
templates = Jinja2Templates(directory=PACKAGE / "templates")
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True
templates.env.auto_reload = False  # templates ship with the package: no stat per include
# Pages hold only same-origin scripts and styles: no inline code a stored string could add.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


MAX_POSITIONS = 16  # one a partition is plenty


class Form:
    """An application/x-www-form-urlencoded body: every value of each name, in order."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in pairs:
            self.values.setdefault(name, []).append(value)

    def get(self, name: str, default: str = "") -> str:
        found = self.values.get(name)
        return found[0] if found else default

    def text(self, name: str) -> str | None:
        """The value stripped, or None when absent or blank."""
        value = self.get(name).strip()
        return value or None

    def getlist(self, name: str) -> list[str]:
        return list(self.values.get(name, []))

    def lines(self, name: str) -> list[str]:
        """A textarea of one item a line, blank lines dropped."""
        return [line.strip() for line in self.get(name).splitlines() if line.strip()]

    def words(self, name: str) -> list[str]:
        """A comma- or space-separated list, blanks dropped, first occurrences kept."""
        raw = self.get(name).replace(",", " ").split()
        return list(dict.fromkeys(raw))

    def checked(self, name: str) -> bool:
        return self.get(name) in ("on", "true", "1", "yes")


class FieldErrors:
    """A refusal laid out for a form: each error at the field it names (by the form's own
    mapping of problem paths to field names), the rest in the summary."""

    def __init__(
        self, error: CairnError | None = None, fields: Callable[[str], str | None] | None = None
    ) -> None:
        self.message = error.message if error else ""
        self.code = error.code if error else ""
        self.details: dict[str, Any] = dict(error.details) if error else {}
        self.by_field: dict[str, str] = {}
        self.other: list[dict[str, str]] = []
        items = error.errors if isinstance(error, ValidationFailed) else []
        for item in items:
            name = fields(item["path"]) if fields else item["path"]
            if name and name not in self.by_field:
                self.by_field[name] = item["reason"]
            else:
                self.other.append(item)

    def __bool__(self) -> bool:
        return bool(self.message)

    def at(self, name: str) -> str:
        return self.by_field.get(name, "")


def base_context(request: Request, session: Session, pause: dict[str, Any]) -> dict[str, Any]:
    return {
        "session": session,
        "csrf": session.csrf,
        "pause": pause,
        "path": request.url.path,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }


# Messages a redirect may ask for by code: a URL never carries text of its own to a page.
NOTICES = {
    "created": "Created.",
    "saved": "Saved.",
    "moved": "Moved.",
    "queued": "Run queued.",
    "retried": "Moved back to ready; the scheduler runs it again.",
    "cancelled": "Cancelled.",
    "cancel_requested": "Cancel requested: the worker stops at its next checkpoint.",
    "resubmitted": "Resubmitted as a new job.",
    "submitted": "Submitted to the queue.",
    "promoted": "Promoted to a board task.",
    "paused": "Paused: a running agent is held where it is; resume lets it go on.",
    "resumed": "Resumed.",
    "messaged": "Message sent: a running agent gets it now, a queued job before its first step.",
    "handed_back": "Handed back: the agent goes on, told what changed and your note.",
    "session_closed": "The live session ended.",
    "followed_up": "Follow-up queued: it goes on from the run it follows.",
    "changes_requested": "Sent back: a follow-up of its last run is queued.",
    "pause_set": "Worker pause mode changed.",
    "dependency_added": "Dependency added.",
    "dependency_removed": "Dependency removed.",
    "logged_out": "Signed out.",
    "run_submitted": "Run submitted: an agent plans the change first.",
    "approved": "Approved: the apply job commits, builds, restarts and verifies.",
    "rejected": "Rejected: the run ended and the service is free for the next.",
    "run_cancel_requested": "Cancel requested: the run's job stops at its next step (during a "
                            "restart or verify it rolls back first).",
}


async def render(
    request: Request, name: str, page: dict[str, Any], status: int = 200
) -> Response:
    session = await current_session(request)
    assert session is not None
    ctx = context(request)
    pause = await Registry(ctx.client, ctx.keys).pause_state()
    values = {**base_context(request, session, pause), **page}
    response = templates.TemplateResponse(request, name, values, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


async def render_plain(
    request: Request, name: str, page: dict[str, Any], status: int = 200
) -> Response:
    """A page without a session (login)."""
    response = templates.TemplateResponse(request, name, page, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


Endpoint = Callable[[Request], Awaitable[Response]]
ActionHandler = Callable[[Request, Form], Awaitable[Response]]
ErrorPage = Callable[[Request, Form, CairnError], Awaitable[Response]]


def page_for(needed: str) -> Callable[[Endpoint], Endpoint]:
    """A GET page for a role at least `needed` (as the API's GET route of the same data):
    signed in (else to /login and back), the actor known, a missing id a 404 page."""

    def wrap(handler: Endpoint) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            session = await current_session(request)
            if session is None:
                return to_login(request)
            act_as(request, session)
            if not allows(session.role, needed):
                return await refuse_role(request, session, needed)
            try:
                return await handler(request)
            except NotFound as e:
                status = {"status": 404, "message": e.message}
                return await render(request, "error.html", status, 404)

        return endpoint

    return wrap


page = page_for(VIEWER)


def stream_for(needed: str) -> Callable[[Endpoint], Endpoint]:
    """A GET answering data for the page's scripts (JSON, SSE): signed in (else 401) with a
    role at least `needed` (else 403)."""

    def wrap(handler: Endpoint) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            session = await current_session(request)
            if session is None:
                return problem(401, "unauthorized", "sign in again at /login", request.url.path)
            act_as(request, session)
            if not allows(session.role, needed):
                return problem(403, "forbidden", role_reason(session, needed), request.url.path)
            return await handler(request)

        return endpoint

    return wrap


stream = stream_for(VIEWER)


def action(
    on_error: ErrorPage | None = None, needs: str = OPERATOR
) -> Callable[[ActionHandler], Endpoint]:
    """A POST from a form or a script: signed in with a role at least `needs` (as the API's
    route of the same command), same origin, the session's CSRF token in the form (`_csrf`)
    or the X-CSRF-Token header. A refusal goes to a script as problem+json, and to a plain
    form as `on_error`'s page (the form again, with the reasons at its fields)."""

    def wrap(handler: ActionHandler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            session = await current_session(request)
            if session is None:
                if wants_json(request):
                    return problem(401, "unauthorized", "sign in again", request.url.path)
                return to_login(request, back=request.headers.get("referer"))
            form = await read_form(request)
            sent = request.headers.get(CSRF_HEADER) or form.get("_csrf")
            if not same_origin(request) or not csrf_matches(sent, session.csrf):
                return await refuse_csrf(request)
            act_as(request, session)
            if not allows(session.role, needs):
                if wants_json(request):
                    reason = role_reason(session, needs)
                    return problem(403, "forbidden", reason, request.url.path)
                return await refuse_role(request, session, needs)
            try:
                return await handler(request, form)
            except CairnError as e:
                if wants_json(request) or on_error is None or e.status >= 500:
                    if isinstance(e, NotFound) and not wants_json(request):
                        status = {"status": 404, "message": e.message}
                        return await render(request, "error.html", status, 404)
                    return problem_from(e, request.scope)
                return await on_error(request, form, e)

        return endpoint

    return wrap


def act_as(request: Request, session: Session) -> None:
    """The session's token acts: its name is the actor, its role (and grants) what an API
    handler checks."""
    state = request.scope.setdefault("state", {})
    state["actor"], state["role"], state["grants"] = session.name, session.role, session.grants


def role_reason(session: Session, needed: str) -> str:
    return (f"this needs the {needed} role or a stronger one; you are signed in as "
            f"{session.name}, whose token's role is {session.role or 'none'}: ask an admin for "
            "a token with that role")  # fmt: skip


async def refuse_role(request: Request, session: Session, needed: str) -> Response:
    message = role_reason(session, needed)
    return await render(request, "error.html", {"status": 403, "message": message}, 403)


async def refuse_csrf(request: Request) -> Response:
    detail = "the form's CSRF token is missing or wrong; reload the page and try again"
    if wants_json(request):
        return problem(403, "csrf_refused", detail, request.url.path)
    return await render(request, "error.html", {"status": 403, "message": detail}, 403)


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def read_form(request: Request) -> Form:
    """The body as a form (scripts post forms too: one parser, one set of checks)."""
    raw = await read_limited(request, context(request).settings.max_body_bytes)
    return Form(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))


async def wait_for_writes(request: Request, projection: str) -> None:
    """Wait (bounded) until `projection` shows each `min_position` the URL names: the page
    after a write, or a live refresh after an event, shows that write."""
    ctx = context(request)
    pattern = re.compile(position_pattern(ctx.keys.partitions))
    wanted = [p for p in request.query_params.getlist("min_position") if pattern.fullmatch(p)]
    await asyncio.gather(*(ctx.caught_up(p, projection) for p in wanted[:MAX_POSITIONS]))


def to_login(request: Request, back: str | None = None) -> Response:
    target = back or request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(safe_next(target), safe='')}", 303)


def safe_next(target: str | None) -> str:
    """A path on this server to return to (never another site's URL)."""
    if not target:
        return "/tasks"
    if "://" in target:
        parts = target.split("://", 1)[1].split("/", 1)
        target = "/" + parts[1] if len(parts) > 1 else "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/tasks"
    return target


def done(request: Request, url: str, notice: str = "") -> Response:
    """Where a successful post goes: a script gets JSON naming the page, a form a 303."""
    path, _, fragment = url.partition("#")
    if notice:
        path += ("&" if "?" in path else "?") + f"notice={notice}"
    url = path + (f"#{fragment}" if fragment else "")
    if wants_json(request):
        return Response(orjson.dumps({"ok": True, "location": url}), media_type="application/json")
    return RedirectResponse(url, 303)


def ago(value: str | float | None) -> str:
    """A time as people read it on a board: `12 s ago`, `3 min ago`, `2 h ago`, `5 d ago`."""
    moment = as_epoch(value)
    if moment is None:
        return ""
    seconds = max(0.0, time.time() - moment)
    for size, unit in ((86_400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def as_epoch(value: str | float | None) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def iso(value: str | float | None) -> str:
    moment = as_epoch(value)
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def clock(value: str | float | None) -> str:
    """A time within the day as people read it: `21:06 UTC` (the exact one in `iso`)."""
    moment = as_epoch(value)
    return datetime.fromtimestamp(moment, UTC).strftime("%H:%M UTC") if moment is not None else ""


def short_id(value: str | None) -> str:
    """The tail of an id, enough to tell cards apart (the full id stays in links and titles)."""
    return (value or "")[-6:]


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def duration(start: str | None, end: str | None) -> str:
    begin, finish = as_epoch(start), as_epoch(end) if end else time.time()
    if begin is None or finish is None:
        return ""
    return span(finish - begin)


def span(seconds: float) -> str:
    """A length of time as people read it: `4.2 s`, `3 min 5 s`, `2 h 10 min`."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def usage_text(usage: dict[str, Any] | None) -> str:
    """Tokens and cost as a person reads them: `3,600 in (600 cached) · 120 out · $0.0110`;
    a cost never guessed: `no price` when some step had none."""
    if not usage:
        return ""
    cached = usage.get("tokens_cached") or 0
    parts = [f"{usage.get('tokens_in', 0):,} in" + (f" ({cached:,} cached)" if cached else ""),
             f"{usage.get('tokens_out', 0):,} out"]  # fmt: skip
    cost = usage.get("cost_usd")
    if cost is not None:
        parts.append(f"${cost:,.4f}")
    if cost is None or usage.get("steps_without_cost"):
        parts.append("no price" if cost is None else f"{usage['steps_without_cost']} step(s) "
                     "without a price")  # fmt: skip
    return " · ".join(parts)


def filesize(n: int | None) -> str:
    """Bytes as a person reads them: `10 GiB`, `512 MiB`."""
    if n is None:
        return "?"
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{size:g} {unit}" if size == int(size) else f"{size:.1f} {unit}"


templates.env.filters.update(
    ago=ago, iso=iso, clock=clock, short_id=short_id, pretty_json=pretty_json, duration=duration,
    usage=usage_text, filesize=filesize,
)
