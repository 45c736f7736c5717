"""Branch rules of a run: the branch it starts from, the one it creates, the one it works on.

A run that starts from the repository's default branch always works on a new branch (named for
the job when none is asked for: `cairn/<YYYYMMDD>/<8 of the job id>[-<skill>|-multi]`), so Cairn
never pushes to the default branch. A run that
starts from another branch works on that branch unless a new one is asked for.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from cairn.domain.errors import ValidationFailed

NEW_BRANCH_PATH = "payload.task.git.newBranch"
MAX_SKILL_SLUG = 40
# Aggregate ids are `<kind>-<partition>-<rest>`; a 26-character rest is a ULID whose first 10
# characters are its time (the same for every job of the same moment), so they are skipped.
_AGGREGATE_ID = re.compile(r"[a-z]+-\d{2,4}-(?P<rest>[0-9a-z]{16,40})")
_ULID_LENGTH, _ULID_TIME = 26, 10


@dataclass(frozen=True)
class Branches:
    """`default` of the repository; `starting` checked out; `new` created (None: none);
    `working` committed to and pushed (`new`, else `starting`)."""

    default: str
    starting: str
    new: str | None
    working: str


def resolve_branches(
    *,
    default: str,
    requested_starting: str | None,
    requested_new: str | None,
    job_id: str,
    skill: str | None,
    steps: int,
    today: datetime.date,
) -> Branches:
    """Settle a run's branches from what the task asks for; a new branch that is the default
    branch is refused (ValidationFailed at `payload.task.git.newBranch`)."""
    starting = (requested_starting or "").strip() or default
    new = (requested_new or "").strip() or None
    if new is None and starting == default:
        new = generated_branch(job_id, skill=skill, steps=steps, today=today)
    if new == default:
        reason = (
            f"'{new}' is the repository's default branch; Cairn never works on it directly: "
            "name another branch, or leave newBranch unset for one named after the job"
        )
        raise ValidationFailed(
            f"{NEW_BRANCH_PATH}: {reason}", errors=[{"path": NEW_BRANCH_PATH, "reason": reason}]
        )
    return Branches(default=default, starting=starting, new=new, working=new or starting)


def generated_branch(job_id: str, *, skill: str | None, steps: int, today: datetime.date) -> str:
    """`cairn/<YYYYMMDD>/<8 of the job id's random part>`, then `-<skill>` for a named skill
    (not `auto`), else `-multi` for two steps or more. The last 8: ids one process makes in
    the same millisecond share the start of their random part (it is incremented)."""
    slug = skill_slug(skill) if skill and skill.strip().lower() != "auto" else ""
    suffix = f"-{slug}" if slug else "-multi" if steps >= 2 else ""
    return f"cairn/{today:%Y%m%d}/{random_part(job_id)[-8:]}{suffix}"


def random_part(job_id: str) -> str:
    """The part of a job id that differs between jobs made at the same moment; for an id that
    is not an aggregate id, its lowercase letters and digits (`job` if it has none)."""
    match = _AGGREGATE_ID.fullmatch(job_id)
    if match is None:
        return re.sub(r"[^a-z0-9]", "", job_id.lower()) or "job"
    rest = match["rest"]
    return rest[_ULID_TIME:] if len(rest) == _ULID_LENGTH else rest


def skill_slug(skill: str) -> str:
    """A skill name as a branch suffix: lowercase `[a-z0-9-]`, at most 40 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", skill.lower()).strip("-")
    return slug[:MAX_SKILL_SLUG].rstrip("-")
