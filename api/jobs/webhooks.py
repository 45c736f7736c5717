"""GitHub's webhook: deliveries about the pull requests Cairn opened become the PR's facts, as a
poll would record them (commands/jobs/pull_facts.py). A delivery is taken only signed with the
install's secret (`X-Hub-Signature-256`, HMAC-SHA256 of the raw body, compared in constant time);
no bearer token (GitHub has none). A delivery's id is its command id: a redelivery appends
nothing. A delivery about a PR Cairn did not open is acknowledged and ignored."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cairn.api.context import context, json_response, read_limited
from cairn.api.problems import problem
from cairn.commands.jobs.pull_facts import record_look
from cairn.commands.runner import command_id_for
from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.pulls import Check, Comment, Observation, PullRequest
from cairn.projections.jobs.pulls import Pulls

EVENTS = ("pull_request", "pull_request_review", "pull_request_review_comment", "check_run",
          "check_suite", "issue_comment", "ping")  # fmt: skip
_DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,100}$")
PATH = "/api/webhooks/github"


async def post_github(request: Request) -> Response:
    """One delivery: 202 with what it recorded (or why it was ignored); 401 unsigned or wrongly
    signed (or webhooks off: no CAIRN_GITHUB_WEBHOOK_SECRET), 400 not JSON, 413 too large."""
    ctx = context(request)
    secret = ctx.settings.pulls.webhook_secret
    raw = await read_limited(request, ctx.settings.max_body_bytes)
    if not secret:
        return _unsigned(request, "webhooks are off here: set CAIRN_GITHUB_WEBHOOK_SECRET to the "
                                  "secret of the repository's webhook")  # fmt: skip
    given = request.headers.get("x-hub-signature-256", "")
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return _unsigned(request, "the delivery is not signed with this install's secret "
                                  "(X-Hub-Signature-256)")  # fmt: skip
    delivery = request.headers.get("x-github-delivery", "")
    if not _DELIVERY.fullmatch(delivery):
        raise ValidationFailed("X-GitHub-Delivery must be the delivery's id",
                               [{"path": "headers.X-GitHub-Delivery", "reason": "missing or "
                                 "not a delivery id"}])  # fmt: skip
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValidationFailed("the body is not valid JSON",
                               [{"path": "body", "reason": str(e)}]) from None  # fmt: skip
    if not isinstance(payload, dict):
        raise ValidationFailed("the body must be a JSON object",
                               [{"path": "body", "reason": "not an object"}])  # fmt: skip
    event = request.headers.get("x-github-event", "")
    url = pull_url(event, payload)
    if url is None:
        return json_response({"recorded": 0, "ignored": f"{event or 'an'} event about no "
                                                        "pull request"}, 202)  # fmt: skip
    pr = next((p for p in await Pulls(ctx.client, ctx.keys).all() if p.url == url), None)
    if pr is None:
        return json_response({"recorded": 0, "ignored": "not a pull request Cairn opened"}, 202)
    seen = observation(event, payload, pr)
    if seen is None:
        return json_response({"recorded": 0, "ignored": f"{event} is not followed"}, 202)
    # The PR watcher's act, whichever way GitHub's fact came (the delivery id is the command's).
    result = await record_look(ctx.store, pr.id, seen, ctx.settings.flags,
                               command_id=command_id_for("github", "delivery", delivery))
    recorded = 0 if result.duplicate or not result.position else result.version - pr.version
    return json_response({"recorded": max(recorded, 0), "pr": pr.id,
                          "duplicate": result.duplicate}, 202)  # fmt: skip


def _unsigned(request: Request, detail: str) -> Response:
    return problem(401, "unauthorized", detail, request.url.path)


def pull_url(event: str, payload: dict[str, Any]) -> str | None:
    """The PR's web URL a delivery is about, if any."""
    pull = payload.get("pull_request")
    if isinstance(pull, dict) and isinstance(pull.get("html_url"), str):
        return str(pull["html_url"])
    issue = payload.get("issue")
    if event == "issue_comment" and isinstance(issue, dict) and issue.get("pull_request"):
        return str(issue.get("html_url") or "") or None
    run = payload.get("check_run")
    if isinstance(run, dict):
        for pull in run.get("pull_requests") or []:
            repo = (payload.get("repository") or {}).get("html_url")
            if isinstance(pull, dict) and repo and pull.get("number"):
                return f"{repo}/pull/{pull['number']}"
    return None


def observation(event: str, payload: dict[str, Any], pr: PullRequest) -> Observation | None:
    """What a delivery says, as a look's observation (None: nothing taken from it). A review
    and its line comments come to a webhook as deliveries of their own, so they are left to the
    PR watcher's next look, which reads them together (a follow-up gets every line comment)."""
    action = payload.get("action")
    if event == "pull_request":
        pull = payload.get("pull_request") or {}
        if action == "closed":
            merged = bool(pull.get("merged"))
            return Observation(state="merged" if merged else "closed",
                               merge_commit=pull.get("merge_commit_sha") if merged else None,
                               at=pull.get("merged_at") or pull.get("closed_at"))  # fmt: skip
        if action == "reopened":
            return Observation(state="open")
        return None
    if event == "issue_comment" and action == "created":
        c = payload.get("comment") or {}
        return Observation(comments=[Comment(
            comment_id=str(c.get("id") or ""), author=_login(c.get("user")),
            body=str(c.get("body") or ""),
            association=str(c.get("author_association") or "NONE"))])  # fmt: skip
    if event == "check_run":
        run = payload.get("check_run") or {}
        conclusion = run.get("conclusion")
        return Observation(check=Check(
            name=str(run.get("name") or "check"), status=str(run.get("status") or "").lower(),
            conclusion=str(conclusion).lower() if conclusion else None,
            url=run.get("details_url") or run.get("html_url")))  # fmt: skip
    return None


def _login(user: Any) -> str:
    return str(user.get("login") or "someone") if isinstance(user, dict) else "someone"


RESPONSES: dict[str, dict[str, Any]] = {"post_github": {"202": {"type": "object"}}}
ROUTES = [Route(PATH, post_github, methods=["POST"])]
ROLES: dict[str, str] = {"post_github": "signed"}  # no token: the delivery's signature
