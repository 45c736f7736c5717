"""Table of the branch rules: which branch a run starts from, which one it creates, which one it
works (and publishes) on, and the refusal of a new branch that is the default branch."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.branches import Branches, random_part, resolve_branches, skill_slug

JOB = "job-03-01jd5x2k7qabcdefgh12345678"  # time part 01jd5x2k7q, random part abcdefgh...
TODAY = datetime.date(2026, 11, 30)
GENERATED = "cairn/20261130/12345678"


def case(
    case_id: str,
    expected: Branches,
    *,
    default: str = "main",
    starting: str | None = None,
    new: str | None = None,
    skill: str | None = None,
    steps: int = 0,
    job_id: str = JOB,
) -> Any:
    inputs = {
        "default": default, "requested_starting": starting, "requested_new": new,
        "job_id": job_id, "skill": skill, "steps": steps, "today": TODAY,
    }  # fmt: skip
    return pytest.param(inputs, expected, id=case_id)


CASES = [
    case("defaults-generate-a-branch", Branches("main", "main", GENERATED, GENERATED)),
    case(
        "starting-defaults-to-the-default-branch",
        Branches("trunk", "trunk", GENERATED, GENERATED),
        default="trunk",
    ),
    case(
        "requested-starting-that-is-the-default-still-generates",
        Branches("main", "main", GENERATED, GENERATED),
        starting="main",
    ),
    case(
        "non-default-starting-works-on-it",
        Branches("main", "release/2.1", None, "release/2.1"),
        starting="release/2.1",
    ),
    case(
        "requested-new-wins",
        Branches("main", "main", "fix/flaky", "fix/flaky"),
        new="fix/flaky",
    ),
    case(
        "requested-new-from-non-default-starting",
        Branches("main", "dev", "fix/flaky", "fix/flaky"),
        starting="dev",
        new="fix/flaky",
    ),
    case(
        "skill-suffix",
        Branches("main", "main", f"{GENERATED}-triage", f"{GENERATED}-triage"),
        skill="triage",
    ),
    case(
        "skill-suffix-beats-multi",
        Branches("main", "main", f"{GENERATED}-lint", f"{GENERATED}-lint"),
        skill="lint",
        steps=3,
    ),
    case("auto-skill-is-no-skill", Branches("main", "main", GENERATED, GENERATED), skill="auto"),
    case(
        "auto-skill-with-steps-is-multi",
        Branches("main", "main", f"{GENERATED}-multi", f"{GENERATED}-multi"),
        skill="auto",
        steps=2,
    ),
    case(
        "two-steps-multi",
        Branches("main", "main", f"{GENERATED}-multi", f"{GENERATED}-multi"),
        steps=2,
    ),
    case("one-step-no-suffix", Branches("main", "main", GENERATED, GENERATED), steps=1),
    case(
        "skill-slugged",
        Branches("main", "main", f"{GENERATED}-upgrade-deps-v2", f"{GENERATED}-upgrade-deps-v2"),
        skill="Upgrade Deps_v2!",
    ),
    case(
        "skill-slug-cut-to-40",
        Branches("main", "main", f"{GENERATED}-{'a' * 40}", f"{GENERATED}-{'a' * 40}"),
        skill="a" * 60,
    ),
    case(
        "skill-with-no-slug-falls-back-to-steps",
        Branches("main", "main", f"{GENERATED}-multi", f"{GENERATED}-multi"),
        skill="???",
        steps=2,
    ),
    case(
        "blank-requests-are-unset",
        Branches("main", "main", GENERATED, GENERATED),
        starting="  ",
        new="",
    ),
    case(
        "hex-id-from-an-idempotency-key",
        Branches("main", "main", "cairn/20261130/23456789", "cairn/20261130/23456789"),
        job_id="job-11-0123456789abcdef0123456789",
    ),
    case(
        "id-not-of-ours-uses-its-letters-and-digits",
        Branches("main", "main", "cairn/20261130/234extra", "cairn/20261130/234extra"),
        job_id="Test_1234-extra",
    ),
]


@pytest.mark.parametrize(("inputs", "expected"), CASES)
def test_resolve_branches(inputs: dict[str, Any], expected: Branches) -> None:
    assert resolve_branches(**inputs) == expected


@pytest.mark.parametrize(
    ("default", "starting", "new"),
    [
        pytest.param("main", None, "main", id="new-is-the-default"),
        pytest.param("main", "dev", "main", id="new-is-the-default-from-another-start"),
        pytest.param("trunk", None, " trunk ", id="trimmed-new-is-the-default"),
    ],
)
def test_a_new_branch_equal_to_the_default_is_refused(
    default: str, starting: str | None, new: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        resolve_branches(
            default=default, requested_starting=starting, requested_new=new,
            job_id=JOB, skill=None, steps=0, today=TODAY,
        )  # fmt: skip

    [error] = caught.value.errors
    assert error["path"] == "payload.task.git.newBranch"
    assert f"'{default}'" in error["reason"] and "default branch" in error["reason"]
    assert "newBranch" in caught.value.message


@pytest.mark.parametrize(
    ("job_id", "expected"),
    [
        ("job-03-01jd5x2k7qabcdefgh12345678", "abcdefgh12345678"),
        ("job-03-0123456789abcdef", "0123456789abcdef"),
        ("plain", "plain"),
        ("a-B_c", "abc"),
        ("--", "job"),
    ],
)
def test_random_part(job_id: str, expected: str) -> None:
    assert random_part(job_id) == expected


@pytest.mark.parametrize(
    ("skill", "expected"),
    [("Triage", "triage"), ("a--b__c", "a-b-c"), ("-x-", "x"), ("é", ""), ("ab" * 30, "ab" * 20)],
)
def test_skill_slug(skill: str, expected: str) -> None:
    assert skill_slug(skill) == expected


def test_a_slug_cut_does_not_end_with_a_dash() -> None:
    assert skill_slug("a" * 39 + "-bcd") == "a" * 39


def test_jobs_made_in_the_same_millisecond_get_different_branches() -> None:
    # Within a millisecond new_ulid increments the random part: only its end differs.
    burst = [f"job-03-06h2ks7rtgh7tr9kj1mrn4jgv{last}" for last in "kos"]
    names = {
        resolve_branches(
            default="main", requested_starting=None, requested_new=None,
            job_id=job_id, skill=None, steps=0, today=TODAY,
        ).working
        for job_id in burst
    }  # fmt: skip
    assert len(names) == 3
