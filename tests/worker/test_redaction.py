"""The redactor: secrets, their encodings and token shapes become [REDACTED], in one piece of
text and in a stream that splits them anywhere; ordinary text passes unchanged, and fast."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote, quote_plus

import pytest

from cairn.worker.redaction import REDACTED, Redactor, secret_named

SECRET = "hunter2/s3cr3t+value=ok"
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    + "\n".join("MIIEowIBAAKCAQEA" + "x" * 48 for _ in range(20))
    + "\n-----END RSA PRIVATE KEY-----"
)
FILLER = "".join(f"line {i}: compiled module {i} in 0.{i:02d}s\n" for i in range(40))


def b64(value: str, *, urlsafe: bool = False, padded: bool = True) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    text = encode(value.encode()).decode()
    return text if padded else text.rstrip("=")


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([SECRET], env={})


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        b64(SECRET),
        b64(SECRET, padded=False),
        b64(SECRET, urlsafe=True),
        b64(SECRET, urlsafe=True, padded=False),
        quote(SECRET, safe=""),
        quote(SECRET, safe="").lower(),
        quote_plus(SECRET),
        json.dumps(SECRET)[1:-1],
    ],
    ids=["value", "base64", "base64-unpadded", "base64url", "base64url-unpadded", "url",
         "url-lower", "url-plus", "json"],
)  # fmt: skip
def test_a_secret_in_each_of_its_forms_is_redacted(redactor: Redactor, form: str) -> None:
    assert redactor.redact(f"token is {form} here") == f"token is {REDACTED} here"


@pytest.mark.parametrize("before", range(7))
def test_a_secret_inside_a_longer_base64_text_is_redacted(redactor: Redactor, before: int) -> None:
    prefix, suffix = bytes(range(1, before + 1)), b"\xfe\x01 trailing bytes"
    blob = base64.b64encode(prefix + SECRET.encode() + suffix).decode()
    redacted = redactor.redact(blob)
    head, _, tail = redacted.partition(REDACTED)
    # The characters that encode nothing but the secret's bits are all gone.
    first, last = -(-before * 8 // 6), (before + len(SECRET)) * 8 // 6
    assert len(head) <= first and len(tail) <= len(blob) - last
    assert blob.startswith(head) and blob.endswith(tail)


@pytest.mark.parametrize(
    "text",
    [
        GITHUB,
        "github_pat_" + "x" * 40,
        "sk-ant-api03-" + "Zz9" * 10,
        "AKIAIOSFODNN7EXAMPLE",
        "AIza" + "B" * 35,
        "xoxb-1234567890-abcdefghij",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
        "https://deploy:pa55word@git.example.com/repo.git",
        PEM,
    ],
    ids=["github", "github-pat", "anthropic", "aws-key-id", "google", "slack", "jwt", "url",
         "pem"],
)  # fmt: skip
def test_token_shapes_are_redacted_without_being_told(text: str) -> None:
    redacted = Redactor(env={}).redact(f"seen: {text}\nnext line")
    assert REDACTED in redacted
    assert text not in redacted and "x" * 48 not in redacted
    assert redacted.endswith("\nnext line")


def test_a_pem_key_without_its_end_is_redacted_to_the_end() -> None:
    cut_short = PEM[: PEM.index("-----END")]
    assert Redactor(env={}).redact("key:\n" + cut_short) == "key:\n" + REDACTED


def test_ordinary_text_passes_unchanged() -> None:
    text = (
        FILLER
        + "Fixed the parser; see https://github.com/owner/repo/pull/12 and ask-learn docs.\n"
        + "password: see the vault\ndef authenticate(token: str) -> bool:\n"
        + "base64 of hello is aGVsbG8=, café ☕ naïve\n"
    )
    assert Redactor(["not-in-this-text-999"], env={}).redact(text) == text


@pytest.mark.parametrize(
    ("name", "secret"),
    [("GITHUB_TOKEN", True), ("PGPASSWORD", True), ("AWS_SECRET_ACCESS_KEY", True),
     ("API_KEYS", True), ("OAUTH", True), ("db_passwd", True), ("GOOGLE_CREDENTIALS", True),
     ("SSH_AUTH_SOCK", True), ("GIT_AUTHOR_EMAIL", False), ("KEYBOARD", False),
     ("PATH", False), ("TOKENIZER_MODEL", False)],
)  # fmt: skip
def test_which_names_hold_secrets(name: str, secret: bool) -> None:
    assert secret_named(name) is secret


def test_values_of_secret_named_variables_are_redacted() -> None:
    env = {"MY_API_TOKEN": "tok-0123-value", "GIT_AUTHOR_EMAIL": "cairn@localhost",
           "SHORT_KEY": "abc12", "HOME": "/home/agent-user"}  # fmt: skip
    text = "tok-0123-value cairn@localhost abc12 /home/agent-user"
    expected = f"{REDACTED} cairn@localhost abc12 /home/agent-user"
    assert Redactor(env=env).redact(text) == expected


def test_the_worker_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_TEST_SERVICE_TOKEN", "from-the-environment-42")
    assert Redactor().redact("x from-the-environment-42 y") == f"x {REDACTED} y"


def stream_in_pieces(redactor: Redactor, pieces: list[str]) -> str:
    stream = redactor.stream()
    return "".join(stream.feed(piece) for piece in pieces) + stream.flush()


def test_a_secret_split_across_chunks_at_every_offset_is_caught(redactor: Redactor) -> None:
    text = f"{FILLER}a {SECRET} b {b64(SECRET)} c {GITHUB} d\n{FILLER}"
    whole = redactor.redact(text)
    assert whole.count(REDACTED) == 3
    start = len(FILLER) - 5
    for offset in range(start, len(text) - len(FILLER) + 5):
        assert stream_in_pieces(redactor, [text[:offset], text[offset:]]) == whole


def test_one_character_at_a_time_is_still_caught(redactor: Redactor) -> None:
    text = f"{FILLER}{PEM}\n{SECRET}\n{FILLER}"
    out = stream_in_pieces(redactor, list(text))
    assert out == f"{FILLER}{REDACTED}\n{REDACTED}\n{FILLER}"


def test_a_long_secret_split_across_chunks_is_caught() -> None:
    long_secret = "L0ng-" * 400
    redactor = Redactor([long_secret], env={})
    text = f"{FILLER}{long_secret}{FILLER}"
    pieces = [text[i : i + 97] for i in range(0, len(text), 97)]
    assert stream_in_pieces(redactor, pieces) == f"{FILLER}{REDACTED}{FILLER}"


def test_a_token_longer_than_what_is_held_back_is_caught_whole() -> None:
    jwt = "eyJ" + "a" * 600 + ".eyJ" + "b" * 600 + "." + "c" * 100
    text = f"{FILLER}{jwt} {FILLER}"
    pieces = [text[i : i + 97] for i in range(0, len(text), 97)]
    assert stream_in_pieces(Redactor(env={}), pieces) == f"{FILLER}{REDACTED} {FILLER}"


def test_a_stream_emits_before_it_ends(redactor: Redactor) -> None:
    stream = redactor.stream()
    first = stream.feed(FILLER * 3)
    assert first and (FILLER * 3).startswith(first)
    assert first + stream.flush() == FILLER * 3


def test_ten_megabytes_stream_through_quickly(redactor: Redactor) -> None:
    lines = [
        "2026-11-30T10:00:00Z INFO fetched https://pypi.org/simple/httpx/ in 120ms\n",
        '{"type":"tool_result","content":"def secret_named(name: str) -> bool: ..."}\n',
        "    assert response.status_code == 200, response.text  # the API answered\n",
        f"exported the key {SECRET} (do not do this)\n",
    ]
    text = "".join(lines) * (10_000_000 // len("".join(lines)) + 1)
    chunks = [text[i : i + 65_536] for i in range(0, 10_000_000, 65_536)]
    began = time.perf_counter()
    out = stream_in_pieces(redactor, chunks)
    took = time.perf_counter() - began
    assert SECRET not in out and out.count(REDACTED) == "".join(chunks).count(SECRET)
    assert took < 3.0, f"10 MB took {took:.2f} s"


def test_what_a_pause_lets_go_of_never_splits_a_secret() -> None:
    """Output that pauses (a watcher waits for it) goes out a line, or a word, at a time; a
    secret or a token printed slowly, in pieces, is still read whole."""
    secret = "s3cr3t-Paced-0123456789"
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    redactor = Redactor([secret], env={})

    def paced(chunks: list[str]) -> str:
        stream, out = redactor.stream(), ""
        for chunk in chunks:
            out += stream.feed(chunk) + stream.release()
        return out + stream.flush()

    for text in (secret, token, f"echo {secret}", f"password: {secret[:8]}x"):
        for size in (1, 3, 5):
            pieces = [text[i:i + size] for i in range(0, len(text), size)] + ["\r\n"]
            shown = paced(pieces)
            assert "[REDACTED]" in shown and secret not in shown and token not in shown, shown
    stream = redactor.stream()
    assert stream.feed("line 1\r\ntakeover$ ") == "" and stream.release() == "line 1\r\ntakeover$ "
