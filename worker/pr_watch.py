"""The PR watcher: follows every open pull request a job opened, through `gh`, and records what
it sees (commands/jobs/pull_facts.py): state, merge, reviews, review and issue comments, checks.
Each PR is looked at again after `poll_s`, twice as late each time nothing changed (up to
`max_poll_s`); all looks share a budget a minute, and when
GitHub's rate limit runs low the next look waits for its reset. For a check that newly failed,
the end of its failed log (`gh run view --log-failed`) goes with the look, for the follow-up."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cairn.commands.jobs.pull_facts import record_look
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.domain.jobs.pulls import (
    LOG_MAX,
    Check,
    Comment,
    LineComment,
    Observation,
    PrChecksChanged,
    PullRequest,
    Review,
    new_facts,
)
from cairn.streams.driver import Client
from cairn.streams.keys import Keys
from cairn.streams.lifetime import wait_for_stop
from cairn.streams.store import EventStore
from cairn.worker.redaction import Redactor
from cairn.worker.secrets import resolve_secrets

log = logging.getLogger("cairn.pr_watch")
VIEW_FIELDS = "number,state,mergedAt,closedAt,mergeCommit,statusCheckRollup"
GH_ENV = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_CONFIG_HOME", "GITHUB_TOKEN",
                    "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy",
                    "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR"})
_RUN = re.compile(r"/actions/runs/(\d+)")
_PR_URL = re.compile(r"https?://[^/]+/(?P<repo>[^/]+/[^/]+)/pull/(?P<number>\d+)")


@dataclass(frozen=True)
class WatchConfig:
    poll_s: float = 30.0
    max_poll_s: float = 300.0
    budget_per_minute: int = 60  # gh calls, for every PR together
    rate_floor: int = 100  # below this many calls left of GitHub's limit, wait for its reset
    tick_s: float = 1.0
    gh_timeout_s: float = 60.0
    rate_every_s: float = 300.0  # how often GitHub's rate limit is read


@dataclass
class _Due:
    at: float = 0.0
    every: float = 0.0


@dataclass
class Budget:
    """Calls a minute, shared by every look."""

    per_minute: int
    spent: list[float] = field(default_factory=list)

    def take(self, now: float) -> bool:
        self.spent = [t for t in self.spent if now - t < 60]
        if len(self.spent) >= self.per_minute:
            return False
        self.spent.append(now)
        return True


class PrWatcher:
    """`open_prs` reads the open PRs (the pulls read model's, which its process gives it)."""

    def __init__(self, client: Client, settings: Settings, config: WatchConfig,
                 open_prs: Callable[[], Awaitable[list[PullRequest]]],
                 env: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.keys = Keys(settings.prefix, settings.partitions)
        self.client, self.settings, self.config = client, settings, config
        self.store = EventStore(client, self.keys, settings.command_ttl_s)
        self.open_prs = open_prs
        self.env = dict(env if env is not None else os.environ)
        self.redactor = Redactor(env=self.env)
        # What gh needs of the watcher's environment (not its store URL, nor the webhook secret).
        self.gh_env = {k: v for k, v in self.env.items() if k in GH_ENV or k.startswith("GH_")}
        self.due: dict[str, _Due] = {}
        self.budget = Budget(config.budget_per_minute)
        self.rate_wait_until = 0.0
        self.rate_read_at = -1e9
        self.token: str | None = None  # the publish token of the PR being looked at

    async def run(self, stop: asyncio.Event) -> None:
        log.info("PR watcher: polling every %gs (at most %gs), %d calls a minute",
                 self.config.poll_s, self.config.max_poll_s, self.config.budget_per_minute)
        while not stop.is_set():
            try:
                await self.round()
            except CairnError as e:
                log.warning("PR watcher round failed: %s", e.message)
            await wait_for_stop(stop, self.config.tick_s)

    async def round(self) -> int:
        """Look at each open PR that is due; how many were looked at."""
        now = time.monotonic()
        if now < self.rate_wait_until:
            return 0
        opened = sorted(await self.open_prs(), key=lambda p: p.id)
        if opened and now - self.rate_read_at >= self.config.rate_every_s:
            self.rate_read_at, self.token = now, None
            if not await self._rate_left():
                return 0
        looked = 0
        for pr in opened:
            due = self.due.setdefault(pr.id, _Due(0.0, self.config.poll_s))
            if due.at > now:
                continue
            if not self.budget.take(now):
                break  # the rest wait for the next minute's budget
            try:
                changed = await self.look(pr)
            except CairnError as e:  # this PR's look is refused: the others go on
                log.warning("PR %s: its look was not recorded: %s", pr.url, e.message)
                changed = False
            due.every = self.config.poll_s if changed else min(due.every * 2,
                                                               self.config.max_poll_s)
            due.at = time.monotonic() + due.every
            looked += 1
        return looked

    async def look(self, pr: PullRequest) -> bool:
        """One look at `pr`; whether it found something new."""
        try:
            self.token = await self._token(pr)
            view = await self._gh_json("pr", "view", pr.url, "--json", VIEW_FIELDS)
            reviews = await self._listed(pr, "pulls", "reviews")
            lines = await self._listed(pr, "pulls", "comments")
            talk = await self._listed(pr, "issues", "comments")
        except GhFailed as e:
            log.warning("PR %s not looked at: %s", pr.url, e)
            return False
        seen = observation(view, reviews, lines, talk)
        facts = new_facts(pr, seen)
        if not facts and pr.deferred is None:  # (a follow-up that waited may run now)
            return False
        changed = next((f for f in facts if isinstance(f, PrChecksChanged)), None)
        if changed is not None and pr.policy.on_ci_failure == "follow_up":
            logs = {c.name: await self._failed_log(pr, c) for c in changed.checks if c.failed}
            seen = replace(seen, failed_logs=logs)
        await record_look(self.store, pr.id, seen, self.settings.flags)
        return True

    async def _token(self, pr: PullRequest) -> str | None:
        """The job's publish credentials for this PR's calls (None: the watcher's own gh)."""
        if not pr.auth_ref:
            return None
        try:
            found = await resolve_secrets({"publish": pr.auth_ref}, env=self.env,
                                          vault_addr=self.settings.execution.vault_addr)
        except CairnError as e:
            raise GhFailed(e.message) from e
        token = found["publish"]
        self.redactor = Redactor([token], env=self.env)
        return token

    async def _rate_left(self) -> bool:
        """Whether GitHub's rate limit has room; if not, the looks wait for its reset."""
        try:
            limit = await self._gh_json("api", "rate_limit")
            core = limit["resources"]["core"]
            remaining, reset = int(core["remaining"]), float(core["reset"])
        except (GhFailed, KeyError, TypeError, ValueError):
            return True  # unknown: the looks go on, and a refusal says so
        if remaining >= self.config.rate_floor:
            return True
        wait = max(reset - time.time(), 60.0)
        self.rate_wait_until = time.monotonic() + wait
        log.warning("PR watcher: %d GitHub calls left; the next look waits %.0fs for the reset",
                    remaining, wait)  # fmt: skip
        return False

    async def _listed(self, pr: PullRequest, kind: str, what: str) -> list[dict[str, Any]]:
        """The PR's reviews, line comments or comments, from the REST API (numeric ids, as a
        webhook names them, that also tie each line comment to its review)."""
        found = _PR_URL.match(pr.url)
        if found is None:
            return []
        path = f"repos/{found['repo']}/{kind}/{found['number']}/{what}"
        value = await self._gh_json("api", path)
        return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []

    async def _failed_log(self, pr: PullRequest, check: Check) -> str:
        run = _RUN.search(check.url or "")
        found = _PR_URL.match(pr.url)
        if run is None or found is None:
            return ""
        try:
            out = await self._gh("run", "view", run[1], "--log-failed", "--repo", found["repo"])
        except GhFailed as e:
            return f"(the failed log could not be read: {e})"
        return self.redactor.redact(out[-LOG_MAX:])

    async def _gh_json(self, *argv: str) -> Any:
        out = await self._gh(*argv)
        try:
            return json.loads(out)
        except ValueError as e:
            raise GhFailed(f"gh {' '.join(argv[:2])} printed no JSON") from e

    async def _gh(self, *argv: str) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                "gh", *argv, env={**self.gh_env, "GH_PROMPT_DISABLED": "1", "NO_COLOR": "1",
                                  **({"GH_TOKEN": self.token} if self.token else {})},
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
        except OSError as e:
            raise GhFailed(f"gh could not start ({e.strerror}): install the GitHub CLI") from e
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.config.gh_timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise GhFailed(f"gh {argv[0]} {argv[1]} timed out") from None
        text = err.decode(errors="replace")
        if "rate limit" in text.lower():
            self.rate_wait_until = time.monotonic() + 60
        if proc.returncode != 0:
            last = self.redactor.redact(text.strip().splitlines()[-1] if text.strip() else "")
            raise GhFailed(f"gh {argv[0]} {argv[1]} exited {proc.returncode}: {last}")
        return out.decode(errors="replace")


class GhFailed(Exception):
    pass


def observation(view: dict[str, Any], rest_reviews: list[dict[str, Any]],
                line_comments: list[dict[str, Any]],
                issue_comments: list[dict[str, Any]]) -> Observation:  # fmt: skip
    """What `gh pr view --json` and the PR's reviews, line comments and comments (REST) say."""
    state = str(view.get("state") or "").lower() or None
    commit = (view.get("mergeCommit") or {}).get("oid") if isinstance(view.get("mergeCommit"),
                                                                   dict) else None  # fmt: skip
    by_review: dict[str, list[LineComment]] = {}
    for c in line_comments:
        review = c.get("pull_request_review_id")
        if review is not None:
            line = c.get("line") if c.get("line") is not None else c.get("original_line")
            by_review.setdefault(str(review), []).append(LineComment(
                path=str(c.get("path") or ""), line=line if isinstance(line, int) else None,
                body=str(c.get("body") or "")))  # fmt: skip
    reviews = [Review(
        review_id=str(r.get("id") or ""), reviewer=_login(r.get("user")),
        state=str(r.get("state") or "").upper(), body=str(r.get("body") or ""),
        association=str(r.get("author_association") or "NONE"),
        comments=tuple(by_review.get(str(r.get("id") or ""), ())),
    ) for r in rest_reviews if isinstance(r, dict)]  # fmt: skip
    comments = [Comment(
        comment_id=str(c.get("id") or ""), author=_login(c.get("user")),
        body=str(c.get("body") or ""), association=str(c.get("author_association") or "NONE"),
    ) for c in issue_comments if isinstance(c, dict)]  # fmt: skip
    comments += [Comment(
        comment_id=f"line-{c.get('id')}", author=_login(c.get("user")),
        body=str(c.get("body") or ""), association=str(c.get("author_association") or "NONE"),
        path=c.get("path"), line=c.get("line") if isinstance(c.get("line"), int) else None,
    ) for c in line_comments if c.get("pull_request_review_id") is None]  # fmt: skip
    checks = [_check(c) for c in view.get("statusCheckRollup") or [] if isinstance(c, dict)]
    return Observation(
        state={"merged": "merged", "closed": "closed", "open": "open"}.get(state or ""),
        merge_commit=commit, at=view.get("mergedAt") or view.get("closedAt"),
        checks=checks, reviews=[r for r in reviews if r.review_id], comments=comments,
    )  # fmt: skip


def _check(c: dict[str, Any]) -> Check:
    if c.get("__typename") == "StatusContext":  # a commit status: state is its conclusion
        state = str(c.get("state") or "").lower()
        done = state in ("success", "failure", "error")
        return Check(name=str(c.get("context") or "status"),
                     status="completed" if done else "in_progress",
                     conclusion=("failure" if state == "error" else state) if done else None,
                     url=c.get("targetUrl"))  # fmt: skip
    conclusion = c.get("conclusion")
    return Check(name=str(c.get("name") or "check"), status=str(c.get("status") or "").lower(),
                 conclusion=str(conclusion).lower() if conclusion else None,
                 url=c.get("detailsUrl"))  # fmt: skip


def _login(author: Any) -> str:
    return str(author.get("login") or "someone") if isinstance(author, dict) else "someone"
