"""How an agent step failed, in words a person can act on, and whether another attempt can
help. One table per runtime, each rule written from the real CLIs' own output (the pinned
versions against a model endpoint that answered 401, 403, 404, 429, 500, or not at all; the
tests run them again): a missing sign-in, a refused key, an unknown model, an untrusted folder
or a refused flag fail the same way every time, so they are not retried; a rate limit is
retried after the delay the vendor gave, where the CLI printed it; a vendor's 5xx or an
unreachable endpoint are retried per the policy.

A step fails when its CLI exits non-zero or its stream reports an error result (claude's
`is_error`, codex's `turn.failed`, gemini's `status: error`), even with exit 0. Some refusals
are seen before the CLI gives up (claude and codex retry a 401 for minutes): `Watch` stops the
step as soon as its output shows one."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from cairn.worker.terminal import strip_escapes


@dataclass(frozen=True)
class Rule:
    code: str
    pattern: re.Pattern[str]
    retryable: bool
    advice: str


@dataclass(frozen=True)
class Failure:
    code: str
    message: str  # what happened, the CLI's own line, and what to do
    retryable: bool
    retry_after_s: float | None = None
    cli_line: str = ""


def _rule(code: str, pattern: str, retryable: bool, advice: str) -> Rule:
    return Rule(code, re.compile(pattern, re.IGNORECASE), retryable, advice)


SIGN_IN = "sign the CLI in on the worker (see `cairn worker`'s start lines), then retry"
KEY = "the endpoint refused the credentials: check the key, the login or the gateway's token"
MODEL = "the model is unknown to the endpoint: name another (the task's runtime.model or " \
        "CAIRN_<RUNTIME>_MODEL)"  # fmt: skip
FLAG = "the CLI refused an argument: its version may not be the one Cairn pins " \
       "(`cairn agents install`)"  # fmt: skip
RATE = "the vendor limited the rate; it is retried after the delay it gave"
VENDOR = "the model endpoint failed or could not be reached; it is retried"

RULES: dict[str, tuple[Rule, ...]] = {
    "claude": (
        _rule("no_signin", r"Not logged in|Please run /login|Invalid API key · Please run",
              False, SIGN_IN),
        _rule("auth_failed", r'"error_status":\s*40[13]\b|api_error_status":\s*40[13]\b|'
              r"authentication_failed|OAuth token has expired|Invalid bearer token", False, KEY),
        _rule("unknown_model", r"model_not_found|issue with the selected model", False, MODEL),
        _rule("rate_limited", r'api_error_status":\s*429|\(429\)|rate_limit', True, RATE),
        _rule("vendor_error", r'api_error_status":\s*5\d\d|API Error: 5\d\d|Unable to connect '
              r"to API|overloaded|server_error|timed out", True, VENDOR),
        _rule("refused_flag", r"error: unknown option|error: option .* argument", False, FLAG),
    ),
    "codex": (
        _rule("no_signin", r"Missing environment variable|Not signed in|not logged in|"
              r"run `codex login`", False, SIGN_IN),
        _rule("auth_failed", r"status 40[13]\b|401 Unauthorized|403 Forbidden|"
              r"invalid_api_key|Incorrect API key", False, KEY),
        _rule("unknown_model", r"status 404\b|404 Not Found|model_not_found|does not exist",
              False, MODEL + " (a 404 can also mean a wrong base URL)"),
        _rule("rate_limited", r"\b429\b|Too Many Requests|rate limit", True, RATE),
        _rule("vendor_error", r"status 5\d\d|high demand|stream disconnected|error sending "
              r"request|Connection failed|timed out", True, VENDOR),
        _rule("not_trusted", r"Not inside a trusted directory", False,
              "the checkout is not trusted; Cairn passes --skip-git-repo-check"),
        _rule("refused_flag", r"error: unexpected argument|error: invalid value|"
              r"unrecognized subcommand", False, FLAG),
    ),
    "gemini": (
        _rule("no_signin", r"Invalid auth method selected|must specify the GEMINI_API_KEY|"
              r"Please set an Auth method|specify .* environment variable", False, SIGN_IN),
        _rule("not_trusted", r"not running in a trusted directory", False,
              "the folder is not trusted: Cairn sets GEMINI_CLI_TRUST_WORKSPACE=true; a "
              "settings file of the operator's may override it"),
        _rule("auth_failed", r'"code":\s*40[13]\b|UNAUTHENTICATED|PERMISSION_DENIED|'
              r"API key not valid|status: 40[13]\b", False, KEY),
        _rule("unknown_model", r'"code":\s*404\b|NOT_FOUND|ModelNotFound|API Error: .*404',
              False, MODEL),
        _rule("rate_limited", r'"code":\s*429\b|RESOURCE_EXHAUSTED|Quota exceeded|'
              r"status: 429\b", True, RATE),
        _rule("vendor_error", r'"code":\s*5\d\d|INTERNAL|UNAVAILABLE|status: 5\d\d|fetch '
              r"failed|ECONNREFUSED|ETIMEDOUT", True, VENDOR),
        _rule("refused_flag", r"Unknown argument|Not enough arguments|Invalid values", False,
              FLAG),
    ),
}  # fmt: skip

_RETRY_AFTER = (
    re.compile(r'"retry_delay_ms":\s*([0-9.]+)', re.IGNORECASE),  # claude's api_retry (ms)
    re.compile(r"retry(?:ing)? in ([0-9.]+)\s*(ms|s|sec|seconds)\b", re.IGNORECASE),
    re.compile(r'"?retryDelay"?:\s*"([0-9.]+)s"', re.IGNORECASE),
    re.compile(r"retry[- ]after:?\s*([0-9.]+)", re.IGNORECASE),
    re.compile(r"try again in ([0-9.]+)\s*(ms|s|sec|seconds)\b", re.IGNORECASE),
)
LINE_MAX = 500


def stream_error(runtime: str, output: str) -> str | None:
    """The error the CLI's stream reports as its result, if any: claude's `is_error` result,
    codex's failed turn, gemini's error result. None for a stream that ended well (or none)."""
    for event in reversed(_events(output)):
        kind = event.get("type")
        if runtime == "claude" and kind == "result":
            return str(event.get("result") or event.get("subtype") or "error") if event.get(
                "is_error") else None  # fmt: skip
        if runtime == "codex" and kind in ("turn.failed", "turn.completed"):
            error = event.get("error") if kind == "turn.failed" else None
            return str(error.get("message") if isinstance(error, dict) else "turn failed") if (
                kind == "turn.failed") else None  # fmt: skip
        if runtime == "gemini" and kind == "result":
            error = event.get("error")
            if event.get("status") == "error":
                return str(error.get("message") if isinstance(error, dict) else "error")
            return None
    return None


def classify(runtime: str, exit_status: int | None, output: str) -> Failure | None:
    """Why the step failed, or None when it did not (exit 0 and no error result)."""
    text = strip_escapes(output)
    reported = stream_error(runtime, text)
    if exit_status == 0 and reported is None:
        return None
    line = reported or _last_line(text) or f"exit status {exit_status}"
    return _match(runtime, line, text, exit_status)


class Watch:
    """Reads a step's output as it comes and names a failure that will not pass before the
    CLI gives up on it: a refused key or an unknown model that claude and codex would retry."""

    def __init__(self, runtime: str) -> None:
        self.runtime = runtime
        self._partial = ""

    def feed(self, chunk: str) -> Failure | None:
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()[-10_000:]
        for line in lines:
            found = self._line(strip_escapes(line))
            if found is not None:
                return found
        return None

    def _line(self, line: str) -> Failure | None:
        if self.runtime == "claude" and '"api_retry"' in line:
            status = re.search(r'"error_status":\s*(\d+)', line)
            if status and status.group(1) in ("401", "403", "404"):
                found = re.search(r'"error":\s*"([^"]+)"', line)
                error = found.group(1) if found else "error"
                said = f"the endpoint answered {status.group(1)} ({error}), which claude retries"
                return _match("claude", said, line, None)
        if self.runtime == "codex" and "Reconnecting..." in line and re.search(
            r"status 40[134]\b", line
        ):
            return _match("codex", _codex_message(line), line, None)
        return None


def _match(runtime: str, line: str, text: str, exit_status: int | None) -> Failure:
    shown = _short(line)
    rules = RULES.get(runtime, ())
    # The error line first; the rest of the output (the tail: a prompt echoed at its start must
    # not decide) only when the line says nothing a rule knows.
    for where in (line, text[-20_000:]):
        for rule in rules:
            if rule.pattern.search(where):
                after = retry_after(text) if rule.code == "rate_limited" else None
                message = f"{runtime}: {shown} ({rule.advice})"
                return Failure(rule.code, message, rule.retryable, after, shown)
    ended = f"exited with status {exit_status}" if exit_status else "reported an error"
    return Failure("agent_failed", f"{runtime} {ended}: {shown}", True, None, shown)


def retry_after(text: str) -> float | None:
    """The delay the vendor asked for, as the CLI printed it (the last one), in seconds."""
    found: float | None = None
    for pattern in _RETRY_AFTER:
        for match in pattern.finditer(text[-50_000:]):
            value = float(match.group(1))
            unit = match.group(2).lower() if match.lastindex and match.lastindex > 1 else ""
            if pattern is _RETRY_AFTER[0] or unit == "ms":
                value /= 1000
            found = value
        if found is not None:
            return round(found, 3)
    return None


def _events(output: str) -> list[dict[str, object]]:
    found = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                found.append(value)
    return found


def _last_line(text: str) -> str:
    """The last line a person would read as the error: not JSON, not a stack frame."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and not line.startswith(("{", "at ", "}", "[")) and "node:internal" not in line:
            return line
    return ""


def _codex_message(line: str) -> str:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    return str(value.get("message") or line) if isinstance(value, dict) else line


def _short(line: str) -> str:
    line = " ".join(line.split())
    return line if len(line) <= LINE_MAX else line[: LINE_MAX - 1] + "…"
