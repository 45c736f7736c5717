"""Tables for the publishing rules: the verification gate, what counts as documentation, which
commands verify, and the PR title, PR body and commit message Cairn writes."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.domain.jobs.publishing import (
    Evidence,
    GateDecision,
    commit_message,
    is_documentation,
    pr_body,
    pr_title,
    step_evidence,
    verification_gate,
    verification_kind,
)

PASSED = Evidence(kind="test", command="pytest -q", exit_status=0, step_id="step-1")
FAILED = Evidence(kind="test", command="pytest -q", exit_status=1, step_id="step-1")
LINT_FAILED = Evidence(kind="lint", command="ruff check .", exit_status=1, step_id="step-2")
SKIP = {"category": "no_tests_exist", "reason": "The repository has no tests", "ticket": "OPS-7"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("README.md", True), ("docs/guide/setup.png", True), ("api/docs/index.rst", True),
        ("doc/conf.py", True), ("CHANGELOG", True), ("LICENSE", True), ("LICENSE.txt", True),
        ("notes.TXT", True), ("guide.adoc", True), ("COPYING", True), ("CODEOWNERS", True),
        ("src/app.py", False), ("requirements.txt", False), ("requirements-dev.txt", False),
        ("CMakeLists.txt", False), ("constraints.txt", False), ("docsite/app.py", False),
        ("Makefile", False), ("pyproject.toml", False), (".github/workflows/ci.yml", False),
    ],
)  # fmt: skip
def test_is_documentation(path: str, expected: bool) -> None:
    assert is_documentation(path) == expected


def gate(
    case_id: str,
    changed: list[str],
    evidence: list[Evidence],
    skip: dict[str, str] | None,
    allowed: bool,
    says: str,
) -> Any:
    return pytest.param(changed, evidence, skip, allowed, says, id=case_id)


GATE = [
    gate("nothing-changed", [], [], None, True, "no source"),
    gate("docs-only-needs-nothing", ["README.md", "docs/a.md"], [], None, True, "documentation"),
    gate("docs-only-even-if-a-check-failed", ["README.md"], [FAILED], None, True, "documentation"),
    gate("source-without-evidence", ["src/app.py", "README.md"], [], None, False, "src/app.py"),
    gate("source-without-evidence-names-the-way-out", ["a.py"], [], None, False, "SkipReason"),
    gate("source-with-a-passing-test", ["src/app.py"], [PASSED], None, True, "pytest -q"),
    gate("source-with-a-failing-test", ["src/app.py"], [FAILED], None, False, "exited 1"),
    gate("a-failure-is-not-skipped", ["src/app.py"], [FAILED], SKIP, False, "step-1"),
    gate("a-later-pass-of-the-command-wins", ["a.py"], [FAILED, PASSED], None, True, "passed"),
    gate("a-later-failure-of-the-command-wins", ["a.py"], [PASSED, FAILED], None, False, "failed"),
    gate(
        "a-pass-does-not-hide-another-failure",
        ["a.py"], [PASSED, LINT_FAILED], None, False, "ruff check .",
    ),
    gate("source-with-a-skip-reason", ["src/app.py"], [], SKIP, True, "no_tests_exist"),
    gate("skip-reason-says-why", ["src/app.py"], [], SKIP, True, "has no tests"),
]  # fmt: skip


@pytest.mark.parametrize(("changed", "evidence", "skip", "allowed", "says"), GATE)
def test_verification_gate(
    changed: list[str],
    evidence: list[Evidence],
    skip: dict[str, str] | None,
    allowed: bool,
    says: str,
) -> None:
    decision = verification_gate(changed_paths=changed, evidence=evidence, skip_reason=skip)

    assert decision.allowed is allowed
    assert says in decision.reason
    assert decision.skip_reason == (dict(skip) if skip else None)
    assert decision.evidence == [e.as_dict() for e in evidence]


def test_a_gate_decision_records_the_evidence_as_plain_data() -> None:
    decision = verification_gate(changed_paths=["a.py"], evidence=[PASSED], skip_reason=None)

    assert decision == GateDecision(
        allowed=True,
        reason=decision.reason,
        evidence=[{"kind": "test", "command": "pytest -q", "exit_status": 0, "step_id": "step-1"}],
        skip_reason=None,
    )


@pytest.mark.parametrize(
    ("command", "kind"),
    [
        ("pytest", "test"), ("python -m pytest -x tests/", "test"), ("uv run pytest", "test"),
        ("PYTHONHASHSEED=0 poetry run pytest -q", "test"), ("npm test", "test"),
        ("npm run test:unit", "test"), ("yarn test --watch=false", "test"), ("pnpm test", "test"),
        ("npx jest", "test"), ("make test", "test"), ("make -j4 check", "test"),
        ("cargo test --all", "test"), ("go test ./...", "test"), ("tox -e py311", "test"),
        ("bundle exec rspec", "test"), ("./gradlew test", "test"), ("mvn -q verify", "test"),
        ("dotnet test", "test"), ("python3 -m unittest discover", "test"),
        ("cd app && npm ci && npm test", "test"), ("ruff check . && pytest", "test"),
        ("ruff check .", "lint"), ("eslint src", "lint"), ("npm run lint", "lint"),
        ("make lint", "lint"), ("cargo clippy -- -D warnings", "lint"), ("go vet ./...", "lint"),
        ("flake8", "lint"), ("black --check .", "lint"), ("prettier --check .", "lint"),
        ("pre-commit run --all-files", "lint"), ("/usr/local/bin/shellcheck x.sh", "lint"),
        ("mypy src", "typecheck"), ("npx tsc --noEmit", "typecheck"), ("pyright", "typecheck"),
        ("ruff check . ; mypy .", "typecheck"),
        ("black .", None), ("prettier --write .", None), ("npm install", None), ("make", None),
        ("echo pytest", None), ("git commit -m test", None), ("cargo build", None), ("", None),
        ("python app.py", None), ("grep -r 'unclosed", None),
    ],
)  # fmt: skip
def test_verification_kind(command: str, kind: str | None) -> None:
    assert verification_kind(command) == kind


def test_step_evidence() -> None:
    assert step_evidence("make test", exit_status=2, step_id="step-3") == Evidence(
        kind="test", command="make test", exit_status=2, step_id="step-3"
    )
    assert step_evidence("make build", exit_status=0, step_id="step-3") is None


@pytest.mark.parametrize(
    ("steps", "instructions", "expected"),
    [
        (["Fix the flaky login test", "Second"], "Ignored.", "Fix the flaky login test"),
        ([None, "  "], "Fix the login bug. Then add a test.", "Fix the login bug"),
        ([], "# Upgrade Django\n\nto 5.1 everywhere", "Upgrade Django"),
        ([], "Bump version to 1.2.3 now! And more", "Bump version to 1.2.3 now!"),
        ([None, "The second step's title"], None, "The second step's title"),
        ([], "   ", "Cairn job job-1"),
        ([], None, "Cairn job job-1"),
        (["  spaced \n  title  "], None, "spaced title"),
    ],
)
def test_pr_title(steps: list[str | None], instructions: str | None, expected: str) -> None:
    assert pr_title(steps, instructions, "job-1") == expected


def test_a_long_pr_title_is_cut_at_a_word_within_90_characters() -> None:
    title = pr_title([], "word " * 40, "job-1")

    assert len(title) <= 90 and title.endswith("…")
    assert title[:-1].split() == ["word"] * len(title[:-1].split())
    assert len(pr_title([], "x" * 200, "job-1")) == 90


def test_pr_body_says_what_was_asked_done_and_verified() -> None:
    decision = verification_gate(changed_paths=["a.py"], evidence=[PASSED], skip_reason=None)

    body = pr_body(
        given=None,
        instructions="Fix the flaky login test.\n\nIt fails on CI one time in ten.",
        step_titles=["Reproduce", None],
        job_id="job-1",
        actor="user:ada",
        gate=decision,
        diffstat=" 1 file changed, 2 insertions(+)",
    )

    assert "Fix the flaky login test." in body and "one time in ten" in body
    assert "1. Reproduce" in body and "2. step-2" in body
    assert "`pytest -q` passed (step-1)" in body
    assert "1 file changed" in body
    assert "job-1" in body and "user:ada" in body


def test_pr_body_keeps_the_given_body_and_names_the_job() -> None:
    skip = verification_gate(changed_paths=["a.py"], evidence=[], skip_reason=SKIP)

    body = pr_body(
        given="Closes #12", instructions="x", step_titles=[], job_id="job-1", actor="a", gate=skip
    )

    assert body.startswith("Closes #12")
    assert "skipped (no_tests_exist): The repository has no tests (OPS-7)" in body
    assert "job-1" in body


def test_pr_body_is_bounded() -> None:
    body = pr_body(
        given=None, instructions="y" * 200_000, step_titles=[], job_id="j", actor="a", gate=None
    )
    assert len(body) < 20_000


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            None,
            "Fix it\n\nMade by Cairn job job-1.\n\nCairn-Job: job-1\nCairn-Actor: user:ada\n",
        ),
        ("  ", "Fix it\n\nMade by Cairn job job-1.\n\nCairn-Job: job-1\nCairn-Actor: user:ada\n"),
        ("Bump deps\n", "Bump deps\n\nCairn-Job: job-1\nCairn-Actor: user:ada\n"),
        (
            "Bump deps\n\nSigned-off-by: Ada <a@x.org>",
            "Bump deps\n\nSigned-off-by: Ada <a@x.org>\nCairn-Job: job-1\nCairn-Actor: user:ada\n",
        ),
        (
            "Bump deps\n\nCairn-Job: forged\ncairn-actor: someone",
            "Bump deps\n\nCairn-Job: job-1\nCairn-Actor: user:ada\n",
        ),
    ],
)
def test_commit_message(given: str | None, expected: str) -> None:
    assert commit_message(given, "job-1", "user:ada", "Fix it") == expected


def test_a_commit_trailer_is_one_line() -> None:
    message = commit_message(None, "job-1", "evil\nCairn-Job: other", "t")
    assert message.endswith("Cairn-Job: job-1\nCairn-Actor: evil Cairn-Job: other\n")
