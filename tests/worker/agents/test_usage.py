"""Tokens and cost from each CLI's stream: every input token (the cached among them), cached,
out; claude's own cost, and the operator's price table for the others; never a guessed cost,
and no usage at all for a run that reported zeros."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.worker.agents.usage import codex_model, cost_of, parse_usage

PRICES = {"gpt-5-codex": {"in": 1.25, "cached": 0.125, "out": 10.0},
          "gemini-2.5-pro": {"in": 2.0, "out": 12.0}}  # fmt: skip

CODEX = """\
2026-11-30T10:00:00.120Z WARN codex_core::config: ignoring unknown key `theme`
{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"**Scanning**"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls",\
"aggregated_output":"README.md\\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"Done."}}
{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,\
"output_tokens":122}}
"""
CLAUDE_RESULT = (
    '{"type":"result","subtype":"success","is_error":false,"duration_ms":5321,'
    '"duration_api_ms":4900,"num_turns":3,"result":"Fixed.","session_id":"5f1c",'
    '"total_cost_usd":0.0421,"usage":{"input_tokens":12,"cache_creation_input_tokens":5120,'
    '"cache_read_input_tokens":20480,"output_tokens":340,"service_tier":"standard"}}'
)
CLAUDE_STREAM = f"""\
{{"type":"system","subtype":"init","cwd":"/w","session_id":"5f1c","model":"claude-sonnet-4-5"}}
{{"type":"assistant","message":{{"role":"assistant","content":[{{"type":"text","text":"On it"}}],\
"usage":{{"input_tokens":4,"output_tokens":12}}}},"session_id":"5f1c"}}
{CLAUDE_RESULT}
"""
GEMINI_STREAM = """\
{"type":"init","timestamp":"2026-11-30T10:00:00.000Z","session_id":"abc","model":"gemini-2.5-pro"}
{"type":"message","timestamp":"2026-11-30T10:00:01.000Z","role":"assistant","content":"Done",\
"delta":true}
{"type":"result","timestamp":"2026-11-30T10:00:02.000Z","status":"success","stats":\
{"total_tokens":1520,"input_tokens":1400,"output_tokens":120,"cached":0,"input":1400,\
"duration_ms":3012,"tool_calls":1}}
"""


@pytest.mark.parametrize(
    ("mode", "output", "model", "usage"),
    [
        ("codex", CODEX, "gpt-5-codex",
         {"tokens_in": 24763, "tokens_cached": 24448, "tokens_out": 122, "model": "gpt-5-codex",
          "cost_usd": 0.00467}),
        ("codex", CODEX, "unpriced",
         {"tokens_in": 24763, "tokens_cached": 24448, "tokens_out": 122, "model": "unpriced"}),
        ("codex", CODEX + CODEX.splitlines()[-1], None,  # a thread's total, not a sum of turns
         {"tokens_in": 24763, "tokens_cached": 24448, "tokens_out": 122}),
        ("claude", CLAUDE_STREAM, None,
         {"tokens_in": 25612, "tokens_cached": 20480, "tokens_out": 340, "cost_usd": 0.0421}),
        ("claude", CLAUDE_RESULT, "ignored",
         {"tokens_in": 25612, "tokens_cached": 20480, "tokens_out": 340, "cost_usd": 0.0421}),
        ("gemini", GEMINI_STREAM, "gemini-2.5-pro",
         {"tokens_in": 1400, "tokens_cached": 0, "tokens_out": 120, "model": "gemini-2.5-pro",
          "cost_usd": 0.00424}),
        ("codex", CODEX.replace('"turn.completed"', '"turn.failed"'), None, None),
        ("claude", '{"type":"result","usage":"lots"}', None, None),
        ("claude", '{"type":"result","usage":{"input_tokens":"many","output_tokens":-3},'
                   '"total_cost_usd":"free"}', None, None),
        ("gemini", '{"stats": {"models": ["not", "a", "map"]}}', None, None),
        ("shell", CODEX, None, None),
    ],
    ids=["codex-priced", "codex-unpriced", "codex-two-turns", "claude-stream", "claude-result",
         "gemini-priced", "codex-failed", "claude-odd-usage", "claude-odd-numbers", "gemini-odd",
         "shell"],
)  # fmt: skip
def test_usage_from_each_clis_output(
    mode: str, output: str, model: str | None, usage: dict[str, Any] | None
) -> None:
    assert parse_usage(mode, output, model=model, prices=PRICES) == usage


@pytest.mark.parametrize("mode", ["codex", "claude", "gemini"])
@pytest.mark.parametrize(
    "garbage",
    ["", "plain text\nno json here", "{broken", "{}\n[]\n{", '{"type": 3}', "}{" * 1000,
     "\x00\xff{\n\n}", '{"stats": null}'],
)  # fmt: skip
def test_usage_parsing_tolerates_garbage(mode: str, garbage: str) -> None:
    assert parse_usage(mode, garbage, prices=PRICES) is None


def test_a_cost_needs_the_model_in_the_table() -> None:
    assert cost_of((1_000_000, 0, 0), "gpt-5-codex", PRICES) == 1.25
    assert cost_of((1_000_000, 1_000_000, 0), "gpt-5-codex", PRICES) == 0.125
    assert cost_of((1_000_000, 500_000, 0), "gemini-2.5-pro", PRICES) == 2.0  # cached at "in"
    assert cost_of((10, 0, 10), None, PRICES) is None
    assert cost_of((10, 0, 10), "gpt-5-codex", None) is None


def test_the_model_of_a_codex_config() -> None:
    assert codex_model('model = "gpt-5.1-codex"\n[model_providers.x]\nmodel = "no"\n') == (
        "gpt-5.1-codex")
    assert codex_model('[profiles.x]\nmodel = "in-a-table"\n') is None


def test_a_resumed_codex_thread_counts_only_its_own_share() -> None:
    """codex reports the thread's total (4,000 -> 8,000 -> ...): a resumed run's usage is what
    it added to the total it started from."""
    assert parse_usage("codex", CODEX, before=(20000, 20000, 100)) == {
        "tokens_in": 4763, "tokens_cached": 4448, "tokens_out": 22}  # fmt: skip
    assert parse_usage("codex", CODEX, before=(99999, 99999, 999)) is None  # nothing new
