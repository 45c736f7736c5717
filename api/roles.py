"""Roles: who may call what. Each API route declares the weakest role that may call it (a
table beside its module's ROUTES); a role may call what it or any weaker role may. The roles,
weakest first: `auditor` reads the log and replays, `viewer` also reads every read model,
`operator` also submits, transitions, cancels and controls work, `admin` also switches the
whole system (the worker pause) and holds the tokens (`cairn token`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.api.problems import problem

ROLES = ("auditor", "viewer", "operator", "admin")  # weakest first
# A route that takes no token but checks a signature of its own (GitHub's webhook).
SIGNED = "signed"
SIGNED_PATHS = ("/api/webhooks/",)


def stronger(role: str) -> tuple[str, ...]:
    """The roles that may do what `role` may, and more."""
    return ROLES[ROLES.index(role) + 1 :] if role in ROLES else ()
AUDITOR, VIEWER, OPERATOR, ADMIN = ROLES


def allows(role: str | None, needed: str) -> bool:
    """Whether a token of `role` may call a route that needs `needed`; an unknown role (a
    token stored by an older Cairn with another name for it) may call nothing."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    return role


class RoleCheck:
    """One route behind its role: the token's role (put in the scope by BearerAuth) must be
    at least `needed`, else 403 problem+json naming both."""

    def __init__(self, app: ASGIApp, needed: str) -> None:
        self.app, self.needed = app, check_role(needed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        role = scope.get("state", {}).get("role")
        if not allows(role, self.needed):
            detail = (
                f"this route needs the {self.needed} role (or a stronger one: "
                f"{', '.join(stronger(self.needed)) or 'none'}); "
                f"the token's role is {role or 'none'}: ask an admin for a token with that role"
            )
            extra = {"needed_role": self.needed, "role": role}
            refused = problem(403, "forbidden", detail, scope.get("path", ""), extra)
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)


def guard_routes(routes: Iterable[BaseRoute], declared: Mapping[str, str]) -> None:
    """Put every /api/ route behind the role its module declares (by route name); a route
    that declares none is an error at start-up, never a route open to every token."""
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/"):
            continue
        if route.name not in declared:
            raise RuntimeError(f"route {route.name} ({route.path}) declares no role")
        if declared[route.name] == SIGNED:
            if not route.path.startswith(SIGNED_PATHS):
                raise RuntimeError(f"route {route.name} ({route.path}) is signed but not under "
                                   f"{SIGNED_PATHS}, which BearerAuth lets through")  # fmt: skip
            continue
        inner = route.app.app if isinstance(route.app, RoleCheck) else route.app
        route.app = RoleCheck(inner, declared[route.name])
