"""Properties of the job contract: it never crashes on JSON, its output is a fixed point, and a
GitHub token anywhere in a payload is always refused without being echoed."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.kinds import ContractSettings, NormalizedJob
from cairn.domain.jobs.registry import JOB_TYPES, normalize_job

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SETTINGS = st.sampled_from(
    [
        ContractSettings(),
        ContractSettings(default_repository="octo/default", default_publish_mode="none"),
        ContractSettings(legacy_jobs_enabled=False, default_runtime="claude"),
    ]
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
# Payloads shaped like the real ones reach the deeper rules, not just "unknown field".
shaped = st.fixed_dictionaries(
    {},
    optional={
        "repository": st.sampled_from(["octo/repo", "git@h:o/r", "https://h/o/r", "x"])
        | json_values,
        "targetRuntime": st.sampled_from(["codex", "gemini_cli", "universal", "vim"]) | json_values,
        "requiredCapabilities": st.lists(st.text(max_size=6), max_size=3) | json_values,
        "task": st.fixed_dictionaries(
            {},
            optional={
                "instructions": st.text(max_size=10) | json_values,
                "skill": st.fixed_dictionaries(
                    {}, optional={"id": json_values, "args": json_values}
                ),
                "steps": st.lists(
                    st.dictionaries(
                        st.sampled_from(["title", "skill", "model", "id"]), json_values
                    ),
                    max_size=3,
                ),
                "publish": st.fixed_dictionaries(
                    {}, optional={"mode": st.sampled_from(["pr", "none", "x"])}
                ),
                "container": st.dictionaries(
                    st.sampled_from(["enabled", "image", "command", "env"]), json_values
                ),
                "git": st.dictionaries(
                    st.sampled_from(["startingBranch", "newBranch"]), json_values
                ),
            },
        )
        | json_values,
        "instruction": json_values,
        "skillId": json_values,
        "inputs": json_values,
        "codex": json_values,
        "manifest": st.text(max_size=60) | json_values,
    },
)


def check_outcome(job_type: str, payload: Any, contract: ContractSettings) -> NormalizedJob | None:
    """Normalize, asserting the only failure is a well-formed ValidationFailed."""
    try:
        job = normalize_job(job_type, payload, contract)
    except ValidationFailed as exc:
        assert exc.errors, "a refusal must say what was wrong"
        for error in exc.errors:
            assert set(error) == {"path", "reason"}
            assert isinstance(error["path"], str) and error["path"]
            assert isinstance(error["reason"], str) and error["reason"]
        return None
    assert isinstance(job, NormalizedJob)
    return job


@FAST
@given(job_type=st.sampled_from(sorted(JOB_TYPES)), payload=json_values | shaped, contract=SETTINGS)
def test_any_json_is_normalized_or_refused(
    job_type: str, payload: Any, contract: ContractSettings
) -> None:
    job = check_outcome(job_type, payload, contract)
    if job is not None:
        assert_invariants(job, contract)


@FAST
@given(payload=st.text(max_size=200), contract=SETTINGS)
def test_any_manifest_text_is_normalized_or_refused(
    payload: str, contract: ContractSettings
) -> None:
    check_outcome("manifest", {"manifest": payload}, contract)


def assert_invariants(job: NormalizedJob, contract: ContractSettings) -> None:
    caps = job.required_capabilities
    assert len(caps) == len(set(caps))
    assert all(cap == cap.lower() for cap in caps)
    again = normalize_job(job.job_type, job.normalized, contract)
    assert again.normalized == job.normalized
    assert again.required_capabilities == caps


words = st.text(string.ascii_letters + string.digits, min_size=1, max_size=8)
capabilities = st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,6}", fullmatch=True), max_size=3)
skills = st.fixed_dictionaries(
    {"id": st.sampled_from(["auto", "lint", "Triage"])},
    optional={
        "args": st.dictionaries(
            words, st.integers() | words | st.lists(words, max_size=2), max_size=3
        ),
        "requiredCapabilities": capabilities,
    },
)
steps = st.lists(
    st.fixed_dictionaries(
        {}, optional={"id": words, "title": words, "instructions": words, "skill": skills}
    ),
    max_size=3,
)
containers = st.fixed_dictionaries(
    {"enabled": st.booleans(), "image": words, "command": st.lists(words, min_size=1, max_size=3)},
    optional={
        "env": st.dictionaries(st.from_regex(r"APP_[A-Z]{1,5}", fullmatch=True), words, max_size=2)
    },
)
branches = st.sampled_from([None, "", "  ", "main", " feature/x ", "release-1.2"])


@st.composite
def task_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Valid canonical payloads, mixing camelCase and snake_case keys."""
    snake = draw(st.booleans())
    payload: dict[str, Any] = {
        "repository": draw(
            st.sampled_from(["octo/repo", "https://git.example.com/a/b.git", "git@h.io:a/b"])
        ),
        "task": {"instructions": draw(words)},
    }
    target = draw(st.sampled_from([None, "codex", "gemini", "gemini_cli", "claude", "universal"]))
    if target is not None:
        payload["target_runtime" if snake else "targetRuntime"] = target
    payload["required_capabilities" if snake else "requiredCapabilities"] = draw(capabilities)
    task = payload["task"]
    task["skill"] = draw(skills)
    task["runtime"] = draw(
        st.fixed_dictionaries(
            {}, optional={"mode": st.sampled_from(["claude", "universal"]), "model": words}
        )
    )
    task["git"] = {
        "startingBranch": draw(branches),
        "new_branch" if snake else "newBranch": draw(branches),
    }
    task["publish"] = draw(
        st.fixed_dictionaries({}, optional={"mode": st.sampled_from(["none", "branch", "pr"])})
    )
    task["proposeTasks"] = draw(st.booleans())
    container = draw(st.none() | containers)
    if container is not None:
        task["container"] = container
    if not (container and container["enabled"]):
        task["steps"] = draw(steps)
    return payload


@FAST
@given(payload=task_payloads(), contract=SETTINGS)
def test_accepted_task_is_a_fixed_point(
    payload: dict[str, Any], contract: ContractSettings
) -> None:
    job = normalize_job("task", payload, contract)

    assert_invariants(job, contract)
    assert [s["id"] for s in job.normalized["task"]["steps"]] == [
        f"step-{i}" for i in range(1, len(job.normalized["task"]["steps"]) + 1)
    ]


@FAST
@given(
    payload=st.fixed_dictionaries(
        {"repository": st.just("octo/repo"), "instruction": words},
        optional={
            "codex": st.fixed_dictionaries({}, optional={"model": words, "effort": words}),
            "ref": st.sampled_from(["main", "dev"]),
            "publishMode": st.sampled_from(["none", "branch", "pr"]),
            "inputs": st.dictionaries(words, words, max_size=2),
        },
    )
)
def test_accepted_legacy_job_is_a_fixed_point_as_a_task(payload: dict[str, Any]) -> None:
    contract = ContractSettings()
    job = normalize_job("codex_exec", payload, contract)

    assert job.job_type == "task" and job.original == payload
    assert_invariants(job, contract)


TOKEN_PREFIXES = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]
secrets = st.builds(
    str.__add__,
    st.sampled_from(TOKEN_PREFIXES),
    st.text(string.ascii_letters + string.digits, min_size=20, max_size=60),
)
keys = st.text(string.ascii_lowercase, min_size=1, max_size=6)
fillers = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(string.ascii_letters + " ", max_size=10),
    lambda children: st.lists(children, max_size=2) | st.dictionaries(keys, children, max_size=2),
    max_leaves=6,
)


@st.composite
def planted(draw: st.DrawFn) -> tuple[Any, str, str]:
    """A JSON value with a token at a random depth, and the path the scanner must report."""
    token = draw(secrets)
    prefix, postfix = draw(
        st.sampled_from([("", ""), ("token=", "\n"), ("Bearer ", "."), ("", "@h")])
    )
    suffix = ""
    value: Any = f"{prefix}{token}{postfix}"
    if draw(st.booleans()):  # the token as an object key
        value, suffix = {token: draw(fillers)}, ".<redacted key>"
    segments: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            key = draw(keys)
            siblings: dict[str, Any] = draw(st.dictionaries(keys, fillers, max_size=2))
            value = {**siblings, key: value}
            segments.append(f".{key}")
        else:
            head: list[Any] = draw(st.lists(fillers, max_size=2))
            value = [*head, value, *draw(st.lists(fillers, max_size=2))]
            segments.append(f"[{len(head)}]")
    path = "payload" + "".join(reversed(segments)) + suffix
    return value, path, token


@settings(max_examples=200, deadline=None)
@given(
    case=planted(),
    job_type=st.sampled_from([*sorted(JOB_TYPES), "no_such_type"]),
    contract=SETTINGS,
)
def test_planted_github_token_is_always_refused(
    case: tuple[Any, str, str], job_type: str, contract: ContractSettings
) -> None:
    payload, path, token = case
    try:
        normalize_job(job_type, payload, contract)
    except ValidationFailed as exc:
        assert path in [e["path"] for e in exc.errors]
        assert any("GitHub token" in e["reason"] for e in exc.errors)
        assert token not in exc.message and token not in repr(exc.errors)
    else:
        raise AssertionError("a payload holding a GitHub token was accepted")
