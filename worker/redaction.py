"""The redactor: every line, event, artifact, commit message and PR text a job produces passes
through it before it leaves the worker.

What is replaced by [REDACTED]:
- each given secret, and the value of each environment variable whose name has a word ending in
  token, secret, password, passwd, key, credential or auth (plural too: GH_TOKEN, PGPASSWORD,
  OAUTH_CLIENT, API_KEYS; not AUTHOR), when it is at least MIN_SECRET_CHARS long;
- each of those values also URL-encoded (quote, quote_plus, lower-case escapes), JSON-escaped,
  and in base64, standard and URL-safe: the value's own encoding (padded or not), and the part
  of a longer base64 text that encodes it, at each of the three byte alignments it can have
  there (the one or two characters at either end that also encode neighbouring bytes stay, each
  holding at most 4 bits of the value);
- token shapes: those domain/credentials.py refuses in payloads (GitHub, GitLab, OpenAI and
  Anthropic sk-, AWS key ids and secret pairs, Slack, URL passwords and user info, JWTs,
  password=...), Google AIza keys, and PEM private keys from BEGIN to END (to the end of the
  text when no END comes).
Not caught: other encodings (hex, base32, base64 wrapped across lines, double encodings), a value
with characters inserted into it, and values shorter than MIN_SECRET_CHARS.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

# The shapes that payloads may not carry are the shapes output may not show; one list of them.
from cairn.domain.credentials import _CREDENTIAL_PATTERNS

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 6
# Held back by a stream at least: a token shape is recognisable within this many characters of
# its start (a URL's user info may run to 256 characters before its '@').
PATTERN_HOLD = 300
MAX_RUN = 16_384  # a run of non-space characters held back whole, up to this long
_SECRET_WORD = re.compile(r"(?:token|secret|password|passwd|key|credential|auth)s?$")
_WORD = re.compile(r"[^a-z0-9]+")
_GOOGLE_KEY = re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----")
_PEM_MARKER_MAX = 70
_TRAILING_RUN = re.compile(r"\S*$")
# Text (lower case) without which a shape cannot match: a shape's pattern runs only over text
# holding one of them, since scanning is most of the cost. A shape not named here always runs.
_TRIGGERS = {
    "a GitHub token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "a GitLab token": ("glpat-",),
    "an OpenAI or Anthropic API key": ("sk-",),
    "an AWS secret access key": ("akia", "asia", "aws"),
    "an AWS access key id": ("akia", "asia"),
    "a Slack token": ("xox",),
    "a URL with user info": ("://",),
    "a URL with a password": ("://",),
    "a JSON Web Token": ("eyj",),
    "a password or secret": ("passw", "secret", "api_key", "apikey", "access_token"),
}


def _starts_a_secret(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _STARTS)


# What a shape's match may start with, in a line begun: such a line waits for its end.
_STARTS = tuple({t for words in _TRIGGERS.values() for t in words} | {"bearer", "token",
                                                                       "-----begin"})


def _encoded(triggers: tuple[str, ...] | None) -> tuple[bytes, ...] | None:
    return None if triggers is None else tuple(t.encode() for t in triggers)


_BEFORE, _AFTER = 64, 4096  # a match starts at most _BEFORE before its trigger
Shape = tuple[tuple[bytes, ...] | None, re.Pattern[str]]
# PEM keys are left to the streams' own state: a key's body may come in many pieces.
_SHAPES: list[Shape] = [(_encoded(_TRIGGERS.get(kind)), pattern)
                        for kind, pattern in _CREDENTIAL_PATTERNS
                        if "PRIVATE KEY" not in pattern.pattern]  # fmt: skip
_SHAPES.append(((b"aiza",), _GOOGLE_KEY))
# Characters of a base64 text, at each byte alignment k, that also encode the k bytes before.
_LEADING = (0, 2, 3)


def secret_named(name: str) -> bool:
    """Whether an environment variable's name says that it holds a secret."""
    return any(_SECRET_WORD.search(word) for word in _WORD.split(name.lower()))


def encoded_forms(value: str) -> set[str]:
    """The value as text and in the encodings it may be printed in (see the module's doc)."""
    raw = value.encode()
    url = quote(value, safe="")
    forms = {value, url, quote_plus(value), re.sub(r"%[0-9A-F]{2}", _lower, url)}
    forms |= {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    whole = base64.b64encode(raw).decode()
    encoded = {whole, whole.rstrip("=")}
    for k, skip in enumerate(_LEADING):
        shifted = base64.b64encode(b"\0" * k + raw).decode()
        encoded.add(shifted[skip : 8 * (k + len(raw)) // 6])  # chars fully within the value
    encoded |= {form.replace("+", "-").replace("/", "_") for form in encoded}
    return {form for form in forms | encoded if len(form) >= MIN_SECRET_CHARS}


def _lower(match: re.Match[str]) -> str:
    return match.group().lower()


class Redactor:
    def __init__(self, secrets: Iterable[str] = (), env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        values = {secret for secret in secrets if len(secret) >= MIN_SECRET_CHARS}
        values |= {value for name, value in env.items()
                   if len(value) >= MIN_SECRET_CHARS and secret_named(name)}  # fmt: skip
        forms = set().union(*(encoded_forms(value) for value in values)) if values else set()
        self.shapes = list(_SHAPES)
        if forms:
            self.shapes.append((None, re.compile(_alternation(forms))))
        self.hold = max(PATTERN_HOLD, *(len(form) for form in forms)) if forms else PATTERN_HOLD

    def redact(self, text: str) -> str:
        stream = self.stream()
        return stream.feed(text) + stream.flush()

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where `text` holds something to redact: sorted, overlaps merged."""
        # ASCII-lowered bytes: one per character, so positions agree with `text`.
        lowered = text.encode("ascii", "replace").lower()
        found: list[tuple[int, int]] = []
        for triggers, pattern in self.shapes:
            windows = [(0, len(text))] if triggers is None else _windows(lowered, triggers)
            for low, high in windows:
                for match in pattern.finditer(text, low, high):
                    if match.end() == high < len(text):  # cut short by the window
                        match = pattern.match(text, match.start()) or match
                    found.append(match.span())
        found.sort()
        merged: list[tuple[int, int]] = []
        for start, end in found:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            elif end > start:
                merged.append((start, end))
        return merged


def _windows(lowered: bytes, triggers: tuple[bytes, ...]) -> list[tuple[int, int]]:
    """Stretches of text around each trigger, merged, where a match may start and run."""
    points = sorted(i for trigger in triggers for i in _find_all(lowered, trigger))
    windows: list[tuple[int, int]] = []
    for point in points:
        low, high = max(0, point - _BEFORE), min(len(lowered), point + _AFTER)
        if windows and low <= windows[-1][1]:
            windows[-1] = (windows[-1][0], high)
        else:
            windows.append((low, high))
    return windows


def _find_all(text: bytes, needle: bytes) -> Iterator[int]:
    at = text.find(needle)
    while at >= 0:
        yield at
        at = text.find(needle, at + 1)


class StreamRedactor:
    """Redacts text that arrives in pieces. `feed` returns what is safe to emit: it holds back a
    tail as long as the longest form a secret may take (at least PATTERN_HOLD), extended to the
    start of the run of non-space characters it cuts into, so a secret split across pieces is
    still caught. `flush` returns the rest, at the end of a step; the stream starts afresh."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.held = ""
        self.in_key = False  # inside a PEM private key whose END has not come yet

    def feed(self, chunk: str) -> str:
        self.held += chunk
        if len(self.held) <= self.redactor.hold:
            return ""  # all of it would be held back anyway
        return self._emit(final=False)

    def flush(self) -> str:
        out = self._emit(final=True)
        self.held, self.in_key = "", False
        return out

    def release(self) -> str:
        """On a pause in the output (a watcher waits for it), what can go without splitting a
        secret: the complete lines held, and of the line begun all but its last run of
        non-space characters (which may be a secret's start; it stays held and is read whole
        with what comes next). A line that holds a word a secret's shape starts with (and the
        line after it) stays held whole."""
        if self.in_key or not self.held:
            return ""
        text = self.held
        end = max(text.rfind("\n"), text.rfind("\r")) + 1  # after the complete lines
        begun = text[end:]
        cut = end
        if not _starts_a_secret(begun):
            run = _TRAILING_RUN.search(begun)
            cut = end + (run.start() if run else len(begun))
        previous = max(text.rfind("\n", 0, max(end - 1, 0)), text.rfind("\r", 0, max(end - 1, 0)))
        if _starts_a_secret(text[previous + 1:end]):  # a shape may run on into the next line
            cut = min(cut, previous + 1)
        if cut <= 0:
            return ""
        head, self.held = text[:cut], text[cut:]
        return self._redact_settled(head, final=True)[0]

    def _emit(self, final: bool) -> str:
        out: list[str] = []
        text = self.held
        while True:
            if self.in_key:
                end = _PEM_END.search(text)
                if end is None:  # the key's body is dropped as it comes, keeping what may be END
                    text = "" if final else text[-_PEM_MARKER_MAX:]
                    break
                text, self.in_key = text[end.end() :], False
            begin = _PEM_BEGIN.search(text)
            if begin is None:
                break
            # What comes before a BEGIN is complete: nothing in it can continue past it.
            out += [self._redact_settled(text[: begin.start()], final=True)[0], REDACTED]
            text, self.in_key = text[begin.end() :], True
        if not self.in_key:
            emitted, text = self._redact_settled(text, final)
            out.append(emitted)
        self.held = text
        return "".join(out)

    def _redact_settled(self, text: str, final: bool) -> tuple[str, str]:
        """(what may be emitted, redacted; what must wait for more text)."""
        cut = len(text) if final else _run_start(text, max(0, len(text) - self.redactor.hold))
        pieces: list[str] = []
        done = 0
        for start, end in self.redactor.spans(text):
            if start >= cut:
                break
            if end == len(text) and not final:
                cut = start  # it may go on in the next piece: wait for it whole
                break
            pieces += [text[done:start], REDACTED]
            done, cut = end, max(cut, end)
        pieces.append(text[done:cut])
        return "".join(pieces), text[cut:]


def _run_start(text: str, cut: int) -> int:
    """A cut inside a run of non-space characters moves back to the run's start: a token shape
    may only become recognisable at its end (a JWT's second part), so a run leaves whole."""
    if cut == 0 or text[cut - 1].isspace() or text[cut].isspace():
        return cut
    low = max(0, cut - MAX_RUN)
    space = max(text.rfind(char, low, cut) for char in " \n\t\r")
    if space >= 0:
        return space + 1
    return 0 if low == 0 else cut  # a run longer than MAX_RUN (minified code) is cut after all


def _alternation(words: Iterable[str]) -> str:
    """One pattern matching any of `words`, longest first, as a trie: a position is tried once
    against it, not once per word, which keeps long outputs fast."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _render(trie)


def _render(node: dict[str, Any]) -> str:
    out: list[str] = []
    while len(node) == 1 and "" not in node:  # a run of single characters
        ((char, node),) = node.items()
        out.append(re.escape(char))
    branches = [re.escape(char) + _render(child) for char, child in sorted(node.items()) if char]
    if branches:
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        out.append(f"(?:{body})?" if "" in node else body)
    return "".join(out)
