"""Each runtime's failure table against what the pinned CLIs really print (samples recorded by
tests/agents/capture.py from the real CLIs and the scripted model server): which failures are
retried, which are not, the vendor's delay, a failure reported by a CLI that exits 0; and the
watch that stops a step as soon as its output shows a refusal that would not pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.worker.agents.failures import Watch, classify, retry_after, stream_error
from cairn.worker.agents.usage import parse_usage

SAMPLES = Path(__file__).parent / "samples"
INDEX = json.loads((SAMPLES / "index.json").read_text())


def sample(name: str) -> tuple[int | None, str]:
    return INDEX[name]["exit_status"], (SAMPLES / f"{name}.txt").read_text()


@pytest.mark.parametrize(
    ("name", "code", "retryable"),
    [
        ("claude-401", "auth_failed", False), ("claude-404", "unknown_model", False),
        ("claude-429", "rate_limited", True), ("claude-500", "vendor_error", True),
        ("claude-nokey", "no_signin", False),
        ("codex-401", "auth_failed", False), ("codex-404", "unknown_model", False),
        ("codex-429", "rate_limited", True), ("codex-500", "vendor_error", True),
        ("codex-nokey", "auth_failed", False),
        ("gemini-401", "auth_failed", False), ("gemini-404", "unknown_model", False),
        ("gemini-429", "rate_limited", True), ("gemini-500", "vendor_error", True),
        ("gemini-nokey", "no_signin", False), ("gemini-untrusted", "not_trusted", False),
        ("gemini-noauth", "no_signin", False),
    ],
)  # fmt: skip
def test_each_failure_is_classified_from_the_clis_own_output(
    name: str, code: str, retryable: bool
) -> None:
    runtime = name.split("-", 1)[0]
    exit_status, output = sample(name)
    failure = classify(runtime, exit_status if exit_status is not None else 1, output)
    assert failure is not None, name
    assert (failure.code, failure.retryable) == (code, retryable), failure
    assert failure.message.startswith(f"{runtime}: ") and "\x1b" not in failure.message
    assert failure.cli_line and len(failure.message) < 1000


@pytest.mark.parametrize("runtime", ["claude", "codex", "gemini"])
def test_a_run_that_went_well_is_no_failure_and_reports_its_usage(runtime: str) -> None:
    exit_status, output = sample(f"{runtime}-ok")
    assert exit_status == 0
    assert classify(runtime, 0, output) is None
    usage = parse_usage(runtime, output, model="gpt-5.1-codex" if runtime == "codex" else None)
    assert usage is not None
    # The scripted server's three turns of 1,200 tokens in (200 cached) and 40 out.
    assert (usage["tokens_in"], usage["tokens_cached"], usage["tokens_out"]) == (3600, 600, 120)
    assert ("cost_usd" in usage) == (runtime == "claude")  # only claude prices itself


@pytest.mark.parametrize("name", ["claude-429", "gemini-429"])
def test_a_rate_limit_is_retried_after_the_delay_the_cli_printed(name: str) -> None:
    exit_status, output = sample(name)  # the scripted vendor asked for 2 s
    failure = classify(name.split("-")[0], exit_status or 1, output)
    assert failure is not None and failure.retry_after_s == 2.0


@pytest.mark.parametrize("runtime", ["claude", "codex", "gemini"])
def test_an_error_result_fails_the_step_even_when_the_cli_exits_0(runtime: str) -> None:
    _, output = sample(f"{runtime}-500")
    assert stream_error(runtime, output) is not None
    failure = classify(runtime, 0, output)
    assert failure is not None and failure.code == "vendor_error"


def test_a_failure_with_no_usage_has_none() -> None:
    for name in ("claude-401", "claude-500", "codex-401", "gemini-401"):
        runtime = name.split("-", 1)[0]
        assert parse_usage(runtime, sample(name)[1]) is None, name


@pytest.mark.parametrize(("name", "code"), [("claude-401", "auth_failed"),
                                            ("codex-401", "auth_failed"),
                                            ("codex-404", "unknown_model")])  # fmt: skip
def test_the_watch_stops_a_refusal_the_cli_would_retry_for_minutes(name: str, code: str) -> None:
    runtime = name.split("-", 1)[0]
    _, output = sample(name)
    watch = Watch(runtime)
    found = None
    for at in range(0, len(output), 37):  # as the output comes, in odd chunks
        found = found or watch.feed(output[at : at + 37])
    assert found is not None and found.code == code and not found.retryable


@pytest.mark.parametrize("name", ["claude-ok", "codex-ok", "gemini-ok", "claude-500",
                                  "codex-429"])  # fmt: skip
def test_the_watch_lets_a_passing_trouble_pass(name: str) -> None:
    runtime = name.split("-", 1)[0]
    assert Watch(runtime).feed(sample(name)[1] + "\n") is None


def test_escapes_are_stripped_from_the_message() -> None:
    _, output = sample("gemini-untrusted")
    assert "\x1b[31m" in output  # the CLI colours it
    failure = classify("gemini", 55, output)
    assert failure is not None and "\x1b" not in failure.message and "[31m" not in failure.message


@pytest.mark.parametrize(("text", "seconds"), [
    ('{"retry_delay_ms":3000,"error_status":429}', 3.0),
    ("Please retry in 37.531s.", 37.531), ('"retryDelay": "12s"', 12.0),
    ("Retry-After: 30", 30.0), ("try again in 250ms", 0.25), ("no delay here", None),
])  # fmt: skip
def test_the_vendor_delay_as_the_clis_print_it(text: str, seconds: float | None) -> None:
    assert retry_after(text) == seconds


junk = st.text(alphabet=st.characters(codec="utf-8"), max_size=400) | st.sampled_from([
    "{", '{"type":"result"', '{"type":"result","is_error":true}', '{"type":"turn.failed"}',
    '{"type":"result","status":"error","error":7}', "\x1b[", '{"type": "api_retry"}',
])  # fmt: skip


@given(st.lists(junk, max_size=8), st.sampled_from(["claude", "codex", "gemini", "shell"]),
       st.one_of(st.none(), st.integers(-20, 300)))  # fmt: skip
def test_junk_and_truncated_output_never_breaks_the_readers(
    lines: list[str], runtime: str, exit_status: int | None
) -> None:
    output = "\n".join(lines)
    classify(runtime, exit_status, output)
    stream_error(runtime, output)
    parse_usage(runtime, output, model="m", prices={"m": {"in": 1.0}})
    Watch(runtime).feed(output)
    retry_after(output)
