"""Which command lines run a verification: tests, a linter or a type checker.

Used for the `shell` runtime, whose step is a command line, to give the verification gate its
evidence. A line is split at `&&`, `||`, `;`, `|` and newlines; in each command, variable
assignments and wrappers (`uv run`, `npx`, `python -m`, `bundle exec`, ...) are skipped and
the tool (and its subcommand) looked up. When a line runs several kinds, tests win over type
checks, type checks over linters.
"""

from __future__ import annotations

import os
import re
import shlex

Kind = str  # "test", "typecheck" or "lint"
_RANK = {"test": 3, "typecheck": 2, "lint": 1}

TOOLS: dict[str, Kind] = {
    **dict.fromkeys(("pytest", "py.test", "tox", "nox", "unittest", "nose2", "jest", "vitest",
                     "mocha", "ava", "karma", "rspec", "phpunit", "ctest", "bats"), "test"),
    **dict.fromkeys(("mypy", "pyright", "tsc", "vue-tsc", "pytype"), "typecheck"),
    **dict.fromkeys(("ruff", "flake8", "pylint", "eslint", "stylelint", "shellcheck",
                     "golangci-lint", "rubocop", "hadolint", "yamllint", "actionlint", "ktlint",
                     "swiftlint", "phpcs", "clippy-driver"), "lint"),
}  # fmt: skip
# Formatters verify only when asked to check, not to rewrite.
CHECK_ONLY: frozenset[str] = frozenset({"black", "prettier", "isort", "gofmt", "rustfmt"})
# Tools whose subcommand decides: `cargo test`, `npm run lint`, `make check`, ...
SUBCOMMANDS: dict[str, dict[str, Kind]] = {
    "cargo": {"test": "test", "nextest": "test", "clippy": "lint", "check": "typecheck"},
    "go": {"test": "test", "vet": "lint"},
    "dotnet": {"test": "test"},
    "mvn": {"test": "test", "verify": "test"},
    "gradle": {"test": "test", "check": "test"},
    "sbt": {"test": "test"},
    "mix": {"test": "test"},
    "rake": {"test": "test", "spec": "test"},
    "deno": {"test": "test", "lint": "lint", "check": "typecheck"},
    "swift": {"test": "test"},
    "bun": {"test": "test"},
    "pre-commit": {"run": "lint"},
    "playwright": {"test": "test"},
    "cypress": {"run": "test"},
    "biome": {"check": "lint", "lint": "lint", "ci": "lint"},
}
SCRIPT_RUNNERS = frozenset({"npm", "yarn", "pnpm", "make", "just", "task"})
_SCRIPT_KINDS: dict[str, Kind] = {"test": "test", "tests": "test", "t": "test", "check": "test",
                                  "lint": "lint", "typecheck": "typecheck",
                                  "type-check": "typecheck"}  # fmt: skip
# Wrappers and how many words each takes before the real command.
WRAPPERS: dict[str, int] = {"env": 1, "time": 1, "nice": 1, "sudo": 1, "xvfb-run": 1, "npx": 1,
                            "bunx": 1, "exec": 1, "command": 1}  # fmt: skip
RUN_WRAPPERS = frozenset({"uv", "poetry", "pipenv", "hatch", "pdm", "rye", "conda"})
_SEPARATORS = re.compile(r"&&|\|\||[;|\n]")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def verification_kind(command_line: str) -> Kind | None:
    """The kind of verification a command line runs (`test`, `typecheck`, `lint`), or None."""
    kinds = [_command_kind(_words(part)) for part in _SEPARATORS.split(command_line)]
    found = [kind for kind in kinds if kind is not None]
    return max(found, key=_RANK.__getitem__) if found else None


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # an unclosed quote: still a command worth looking at
        return command.split()


def _command_kind(words: list[str]) -> Kind | None:
    words = _unwrap(words)
    if not words:
        return None
    tool, args = os.path.basename(words[0]), words[1:]
    tool = "gradle" if tool == "gradlew" else tool
    if tool in TOOLS:
        return TOOLS[tool]
    if tool in CHECK_ONLY:
        return "lint" if {"--check", "-l", "--list-different"} & set(args) else None
    options = [arg for arg in args if not arg.startswith("-")]
    if tool in SUBCOMMANDS and options:
        return SUBCOMMANDS[tool].get(options[0])
    if tool in SCRIPT_RUNNERS and options:
        script = options[1] if options[0] in ("run", "run-script") and len(options) > 1 else ""
        target = script or options[0]
        return _SCRIPT_KINDS.get(re.split(r"[:_-]", target, maxsplit=1)[0]) or _SCRIPT_KINDS.get(
            target
        )
    return None


def _unwrap(words: list[str]) -> list[str]:
    while words and (skip := _wrapper_words(words)):
        words = words[skip:]
    return words


def _wrapper_words(words: list[str]) -> int:
    """How many leading words are an assignment or a wrapper (0: the command starts here)."""
    head, second = os.path.basename(words[0]), words[1] if len(words) > 1 else ""
    if _ASSIGNMENT.match(words[0]):
        return 1
    if head in WRAPPERS:
        return WRAPPERS[head]
    runs = head in RUN_WRAPPERS and second == "run"
    execs = head in ("bundle", "pnpm", "yarn") and second == "exec"
    module = re.fullmatch(r"python[0-9.]*|py", head) is not None and second == "-m"
    return 2 if runs or execs or module else 0
