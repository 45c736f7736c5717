"""A pull request a job opened, as an aggregate of its own (kind `pr`): what GitHub said of it
(checks, reviews, comments, merged, closed), each fact once whether a poll or a webhook saw it
first, and what Cairn did about it (follow-ups of its last job). A PR outlives the job that
opened it: follow-ups push to it, so its facts are the PR's, not one job's (decision 0009).

Its id comes from its URL (the same URL, the same aggregate), so the watcher, a webhook and the
worker that opened it name it alike."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from cairn.domain.credentials import redact_credentials
from cairn.domain.errors import CorruptStream
from cairn.domain.events import Event
from cairn.domain.upcast import Upcaster, decode_event

ON_CI_FAILURE = ("follow_up", "notify", "none")
ON_REVIEW = ("follow_up", "notify")
ON_CLOSE = ("ready", "cancel")
WRITERS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})  # GitHub's author_association
FAILED = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure"})
TEXT_MAX = 4_000  # a review's or a comment's body as kept
LOG_MAX = 6_000  # the end of a failed check's log in a follow-up's message


class PullEvent(Event, frozen=True, kw_only=True, omit_defaults=True):
    pass


class Policy(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What Cairn does about the PR (the job's `publish` options)."""

    on_ci_failure: str = "follow_up"
    max_auto_fixes: int = 2
    on_review: str = "follow_up"
    on_close: str = "ready"
    mention: str = "@cairn"


class Check(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    status: str = "completed"  # queued, in_progress, completed
    conclusion: str | None = None  # success, failure, ... (None while it runs)
    url: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "completed" and (self.conclusion or "").lower() in FAILED


class LineComment(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    path: str
    line: int | None = None
    body: str


class PrOpened(PullEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "pr.opened"
    url: str
    number: int | None = None
    branch: str
    base: str | None = None
    job_id: str
    task_id: str | None = None
    project: str
    policy: Policy = Policy()
    auth_ref: str | None = None  # the job's publish credentials (a reference, never a value)


class PrPushed(PullEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A follow-up pushed to the PR's branch: it is the PR's last job now."""

    TYPE: ClassVar[str] = "pr.pushed"
    job_id: str
    commit: str | None = None


class PrChecksChanged(PullEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "pr.checks_changed"
    checks: list[Check]


class PrReviewSubmitted(PullEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "pr.review_submitted"
    review_id: str
    reviewer: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    body: str = ""
    association: str = "NONE"
    comments: list[LineComment] = []


class PrCommented(PullEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "pr.commented"
    comment_id: str
    author: str
    body: str
    association: str = "NONE"
    path: str | None = None
    line: int | None = None


class PrMerged(PullEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "pr.merged"
    merge_commit: str | None = None
    at: str | None = None


class PrClosed(PullEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "pr.closed"
    at: str | None = None


class PrReopened(PullEvent, frozen=True, kw_only=True, omit_defaults=True):
    TYPE: ClassVar[str] = "pr.reopened"


class PrFollowUpRequested(PullEvent, frozen=True, kw_only=True, omit_defaults=True):
    """Cairn answered a fact with a follow-up of the PR's last job (`auto`: a CI fix, counted
    against the policy's limit)."""

    TYPE: ClassVar[str] = "pr.follow_up_requested"
    job_id: str
    reason: str  # checks_failed, changes_requested, mention
    auto: bool = False


class PrFollowUpDeferred(PullEvent, frozen=True, kw_only=True, omit_defaults=True):
    """A follow-up the facts called for while a run of the PR was going: it runs once that run
    ended (a later one's message joins it)."""

    TYPE: ClassVar[str] = "pr.follow_up_deferred"
    reason: str
    message: str
    auto: bool = False


class PrGaveUp(PullEvent, frozen=True, kw_only=True, omit_defaults=True):
    """Checks failed again with the automatic fixes spent: a person's turn."""

    TYPE: ClassVar[str] = "pr.gave_up"
    reason: str


PULL_EVENTS: dict[str, type[PullEvent]] = {
    cls.TYPE: cls
    for cls in (PrOpened, PrPushed, PrChecksChanged, PrReviewSubmitted, PrCommented, PrMerged,
                PrClosed, PrReopened, PrFollowUpRequested, PrFollowUpDeferred, PrGaveUp)
}  # fmt: skip
PULL_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def pull_event_from(type_: str, schema: int, data: dict[str, Any]) -> PullEvent:
    return decode_event(PULL_EVENTS, PULL_UPCASTERS, type_, schema, data)


class PullRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A PR as its facts leave it. `jobs` are the jobs that pushed to it, the last one the
    one a follow-up continues."""

    id: str
    version: int
    url: str
    number: int | None
    branch: str
    base: str | None
    project: str
    task_id: str | None
    policy: Policy
    jobs: list[str]
    auth_ref: str | None = None
    state: str = "open"  # open, merged, closed
    merge_commit: str | None = None
    checks: list[Check] = []
    review_decision: str | None = None  # the last writer's review state that counts
    reviews: list[str] = []  # review ids seen
    comments: list[str] = []  # comment ids seen
    auto_fixes: int = 0
    gave_up: bool = False
    deferred: dict[str, Any] | None = None  # {reason, message, auto}: waits for the run going
    updated_at: str = ""
    timeline: list[dict[str, Any]] = []  # {type, ts, summary}: what the run page shows

    @property
    def last_job(self) -> str:
        return self.jobs[-1]

    @property
    def failing(self) -> list[Check]:
        return [c for c in self.checks if c.failed]


def evolve(state: PullRequest | None, event: PullEvent, pr_id: str, version: int,
           ts: str) -> PullRequest:  # fmt: skip
    expected = 1 if state is None else state.version + 1
    if version != expected:
        raise CorruptStream(f"pull request {pr_id}: event version {version} follows "
                            f"{expected - 1}", aggregate_id=pr_id, version=version)  # fmt: skip
    if isinstance(event, PrOpened):
        return PullRequest(
            id=pr_id, version=1, url=event.url, number=event.number, branch=event.branch,
            base=event.base, project=event.project, task_id=event.task_id, policy=event.policy,
            jobs=[event.job_id], auth_ref=event.auth_ref, updated_at=ts,
            timeline=[{"type": event.TYPE, "ts": ts, "summary": f"opened by {event.job_id}"}],
        )  # fmt: skip
    if state is None:
        raise CorruptStream(f"pull request {pr_id}: version 1 is {event.TYPE}, not pr.opened",
                            aggregate_id=pr_id, version=version)  # fmt: skip
    after = _apply(state, event)
    line = {"type": event.TYPE, "ts": ts, "summary": summary(event)}
    return msgspec.structs.replace(after, version=version, updated_at=ts,
                                   timeline=[*state.timeline, line][-200:])  # fmt: skip


def _apply(s: PullRequest, e: PullEvent) -> PullRequest:
    replace = msgspec.structs.replace
    match e:
        case PrPushed(job_id=job_id):
            return replace(s, jobs=[*s.jobs, job_id] if job_id not in s.jobs else s.jobs)
        case PrChecksChanged(checks=checks):
            return replace(s, checks=checks)
        case PrReviewSubmitted():
            decision = s.review_decision
            if e.association in WRITERS and e.state in ("APPROVED", "CHANGES_REQUESTED"):
                decision = e.state
            return replace(s, reviews=[*s.reviews, e.review_id], review_decision=decision)
        case PrCommented(comment_id=comment_id):
            return replace(s, comments=[*s.comments, comment_id])
        case PrMerged(merge_commit=commit):
            return replace(s, state="merged", merge_commit=commit)
        case PrClosed():
            return replace(s, state="closed")
        case PrReopened():
            return replace(s, state="open")
        case PrFollowUpRequested(job_id=job_id, auto=auto):
            return replace(s, jobs=[*s.jobs, job_id], auto_fixes=s.auto_fixes + int(auto),
                           deferred=None)  # fmt: skip
        case PrFollowUpDeferred(reason=reason, message=message, auto=auto):
            return replace(s, deferred={"reason": reason, "message": message, "auto": auto})
        case PrGaveUp():
            return replace(s, gave_up=True)
    raise TypeError(f"not a pull request event: {e!r}")


def summary(event: PullEvent) -> str:
    """One line of the PR's timeline."""
    match event:
        case PrChecksChanged(checks=checks):
            marks = ", ".join(f"{c.name} {c.conclusion or c.status}" for c in checks)
            return f"checks: {marks}" if marks else "no checks"
        case PrReviewSubmitted(reviewer=who, state=state, comments=comments):
            return f"{who} {state.lower().replace('_', ' ')}" + (
                f" ({len(comments)} comment(s))" if comments else "")  # fmt: skip
        case PrCommented(author=who, body=body):
            return f"{who}: {' '.join(body.split())[:120]}"
        case PrMerged(merge_commit=commit):
            return f"merged{f' as {commit[:12]}' if commit else ''}"
        case PrClosed():
            return "closed without merge"
        case PrReopened():
            return "reopened"
        case PrPushed(job_id=job_id):
            return f"{job_id} pushed to it"
        case PrFollowUpRequested(job_id=job_id, reason=reason):
            return f"follow-up {job_id} ({reason.replace('_', ' ')})"
        case PrFollowUpDeferred(reason=reason):
            return f"a follow-up ({reason.replace('_', ' ')}) waits for the run going"
        case PrGaveUp(reason=reason):
            return reason
    return event.TYPE


# ---- what a look at the PR saw, as facts not yet known ---------------------------------------


@dataclass(frozen=True)
class Review:
    review_id: str
    reviewer: str
    state: str
    body: str = ""
    association: str = "NONE"
    comments: tuple[LineComment, ...] = ()


@dataclass(frozen=True)
class Comment:
    comment_id: str
    author: str
    body: str
    association: str = "NONE"
    path: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Observation:
    """What one look at the PR saw (a poll sees it all; a webhook one part: None is unknown)."""

    state: str | None = None  # open, merged, closed
    merge_commit: str | None = None
    at: str | None = None
    checks: Sequence[Check] | None = None  # every check (a poll)
    check: Check | None = None  # one check's news (a webhook)
    reviews: Sequence[Review] = ()
    comments: Sequence[Comment] = ()
    failed_logs: dict[str, str] = field(default_factory=dict)  # check name -> its log's end


def new_facts(pr: PullRequest, seen: Observation) -> list[PullEvent]:
    """The facts `seen` holds that the PR's events do not yet: each once, whoever saw it."""
    facts: list[PullEvent] = []
    checks = seen.checks
    if checks is None and seen.check is not None:
        checks = [*(c for c in pr.checks if c.name != seen.check.name), seen.check]
    if checks is not None and _checks_key(checks) != _checks_key(pr.checks):
        facts.append(PrChecksChanged(checks=sorted(checks, key=lambda c: c.name)))
    known_reviews = set(pr.reviews)
    for review in seen.reviews:
        if review.review_id not in known_reviews:
            known_reviews.add(review.review_id)
            facts.append(PrReviewSubmitted(
                review_id=review.review_id, reviewer=review.reviewer, state=review.state,
                body=_said(review.body), association=review.association,
                comments=[LineComment(path=c.path, line=c.line, body=_said(c.body))
                          for c in review.comments]))  # fmt: skip
    known_comments = set(pr.comments)
    for comment in seen.comments:
        if comment.comment_id not in known_comments:
            known_comments.add(comment.comment_id)
            facts.append(PrCommented(comment_id=comment.comment_id, author=comment.author,
                                     body=_said(comment.body), association=comment.association,
                                     path=comment.path, line=comment.line))  # fmt: skip
    if seen.state == "merged" and pr.state != "merged":
        facts.append(PrMerged(merge_commit=seen.merge_commit, at=seen.at))
    elif seen.state == "closed" and pr.state == "open":
        facts.append(PrClosed(at=seen.at))
    elif seen.state == "open" and pr.state == "closed":
        facts.append(PrReopened())
    return facts


def _said(text: str) -> str:
    """What someone wrote on the PR as the log keeps it: cut, and a credential pasted into it
    redacted (it would reach an event and a prompt)."""
    return redact_credentials(text[:TEXT_MAX])


def _checks_key(checks: Sequence[Check]) -> list[tuple[str, str, str | None]]:
    return sorted((c.name, c.status, c.conclusion) for c in checks)


# ---- what Cairn does about them ----------------------------------------------------------------


@dataclass(frozen=True)
class Reaction:
    """A follow-up to run (`message`, `reason`, `auto`), or a note to record (`gave_up`)."""

    reason: str
    message: str = ""
    auto: bool = False
    gave_up: bool = False


def reactions(pr: PullRequest, facts: Sequence[PullEvent], seen: Observation,
              before: Sequence[Check] = ()) -> list[Reaction]:  # fmt: skip
    """What the facts call for under the PR's policy: at most one follow-up per look (a
    mention first, then requested changes, then checks that newly failed: one that failed
    already, `before`, asked for its fix then)."""
    if pr.state != "open" or any(isinstance(f, PrMerged | PrClosed) for f in facts):
        return []
    policy = pr.policy
    mention = re.compile(rf"(?<![\w@.]){re.escape(policy.mention)}(?![\w-])", re.IGNORECASE) \
        if policy.mention else None  # fmt: skip
    for fact in facts:
        if isinstance(fact, PrCommented):
            said, association = [fact.body], fact.association
        elif isinstance(fact, PrReviewSubmitted):
            said, association = [fact.body, *(c.body for c in fact.comments)], fact.association
        else:
            continue
        if mention and association in WRITERS and any(mention.search(s) for s in said):
            return [Reaction("mention", _mention_message(fact))]
    for fact in facts:
        if isinstance(fact, PrReviewSubmitted) and fact.state == "CHANGES_REQUESTED" \
                and fact.association in WRITERS and policy.on_review == "follow_up":  # fmt: skip
            return [Reaction("changes_requested", _review_message(fact))]
    changed = next((f for f in facts if isinstance(f, PrChecksChanged)), None)
    failed_before = {c.name for c in before if c.failed}
    failing = [c for c in changed.checks if c.failed and c.name not in failed_before] \
        if changed else []  # fmt: skip
    if failing and policy.on_ci_failure == "follow_up" and not pr.gave_up:
        if pr.auto_fixes >= policy.max_auto_fixes:
            names = ", ".join(c.name for c in failing)
            return [Reaction("checks_failed", gave_up=True, message=(
                f"checks failed again ({names}) after {pr.auto_fixes} automatic fix(es), the "
                f"limit (publish.maxAutoFixes): a person's turn"))]  # fmt: skip
        return [Reaction("checks_failed", _checks_message(failing, seen.failed_logs), auto=True)]
    return []


def deferred_reaction(pr: PullRequest, reaction: Reaction | None) -> Reaction | None:
    """The reaction to take now: this look's, joined to one that waited for a run to end."""
    waited = pr.deferred
    if waited is None:
        return reaction
    if reaction is None or reaction.gave_up:
        return reaction or Reaction(str(waited["reason"]), str(waited["message"]),
                                    auto=bool(waited["auto"]))  # fmt: skip
    return Reaction(reaction.reason, f"{waited['message']}\n\n{reaction.message}",
                    auto=reaction.auto or bool(waited["auto"]))  # fmt: skip


def _checks_message(failing: Sequence[Check], logs: dict[str, str]) -> str:
    parts = ["The pull request's checks failed. Fix what makes them fail, on this branch.", ""]
    for check in failing:
        parts.append(f"## {check.name}: {check.conclusion}" + (f" ({check.url})" if check.url
                                                                 else ""))  # fmt: skip
        log = redact_credentials(logs.get(check.name, "")).strip()
        if log:
            parts += ["The end of its failed log:", "```", log[-LOG_MAX:], "```"]
        parts.append("")
    return "\n".join(parts).strip()


def _review_message(review: PrReviewSubmitted) -> str:
    parts = [f"{review.reviewer} requested changes on the pull request. Make them, on this "
             "branch.", ""]  # fmt: skip
    if review.body.strip():
        parts += [review.body.strip(), ""]
    for comment in review.comments:
        where = f"{comment.path}:{comment.line}" if comment.line is not None else comment.path
        parts.append(f"- {where}: {comment.body.strip()}")
    return "\n".join(parts).strip()


def _mention_message(fact: PullEvent) -> str:
    if isinstance(fact, PrCommented):
        where = f" on {fact.path}:{fact.line}" if fact.path else ""
        return f"{fact.author} asked on the pull request{where}:\n\n{fact.body.strip()}"
    assert isinstance(fact, PrReviewSubmitted)
    return _review_message(fact).replace("requested changes", "asked", 1)


def policy_of(publish: dict[str, Any]) -> Policy:
    """The policy a job's `publish` options set (unknown values: the defaults)."""
    on_ci = publish.get("onCiFailure")
    on_review = publish.get("onReview")
    on_close = publish.get("onClose")
    fixes = publish.get("maxAutoFixes")
    mention = publish.get("mention")
    return Policy(
        on_ci_failure=on_ci if on_ci in ON_CI_FAILURE else "follow_up",
        max_auto_fixes=fixes if isinstance(fixes, int) and 0 <= fixes <= 20 else 2,
        on_review=on_review if on_review in ON_REVIEW else "follow_up",
        on_close="cancel" if on_close == "cancel" else "ready",
        mention=mention if isinstance(mention, str) and mention.startswith("@") else "@cairn",
    )  # fmt: skip
