"""Running one CLI: real processes (small bash scripts), their output, limits, cancel and what
is left of their process group afterwards."""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cairn.domain.errors import StoreUnavailable
from cairn.worker.process import (
    ALLOWED_ENV,
    LaunchFailed,
    Limits,
    ProcessResult,
    minimal_env,
    run_process,
)

ROOMY = Limits(step_s=30, idle_s=30, deadline=None)


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "script.sh"
    path.write_text("set -u\n" + textwrap.dedent(body))
    return ["/bin/bash", str(path)]


def running(pid: int) -> bool:
    """Whether `pid` still runs; a zombie (dead, waiting for its reaper) does not count."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def never() -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return False

    return check


def when(path: Path, after_s: float = 0.0) -> tuple[Callable[[], Awaitable[bool]], list[float]]:
    """A cancel that turns true once `path` exists (and `after_s` later); it records when."""
    turned: list[float] = []

    async def check() -> bool:
        now = asyncio.get_running_loop().time()
        if not turned and path.exists():
            turned.append(now + after_s)
        return bool(turned) and now >= turned[0]

    return check, turned


async def run(
    tmp_path: Path,
    argv: list[str],
    *,
    limits: Limits = ROOMY,
    should_stop: Callable[[], Awaitable[bool]] | None = None,
    grace_s: float = 5.0,
    stdin: bytes | None = None,
) -> tuple[ProcessResult, list[str]]:
    chunks: list[str] = []

    async def collect(text: str) -> None:
        chunks.append(text)

    result = await run_process(
        argv,
        cwd=tmp_path,
        env=minimal_env(tmp_path / "home"),
        on_output=collect,
        limits=limits,
        should_stop=should_stop or never(),
        grace_s=grace_s,
        stdin=stdin,
    )
    return result, chunks


async def test_output_arrives_in_order_and_the_exit_status_is_returned(tmp_path: Path) -> None:
    argv = script(tmp_path, """
        for i in $(seq 1 50); do echo "line $i"; echo "err $i" >&2; sleep 0.002; done
        exit 3
    """)  # fmt: skip
    result, chunks = await run(tmp_path, argv)
    expected = "".join(f"line {i}\nerr {i}\n" for i in range(1, 51))
    assert "".join(chunks) == expected
    assert len(chunks) > 1  # handed over as it came, not at the end
    assert (result.exit_status, result.stopped, result.limit_s) == (3, None, None)


async def test_a_character_split_across_writes_is_decoded_whole(tmp_path: Path) -> None:
    argv = script(tmp_path, r"""
        printf '\xc3'; sleep 0.2; printf '\xa9 ok \xff\n'
    """)  # fmt: skip
    result, chunks = await run(tmp_path, argv)
    assert "".join(chunks) == "é ok \ufffd\n"
    assert result.exit_status == 0


async def test_stdin_is_given_to_the_program(tmp_path: Path) -> None:
    result, chunks = await run(tmp_path, ["cat"], stdin=b"the prompt\n" * 10_000)
    assert "".join(chunks) == "the prompt\n" * 10_000
    assert result.exit_status == 0


@pytest.mark.parametrize(
    ("body", "limits", "stopped", "limit_s"),
    [
        ("echo started; sleep 30", Limits(step_s=30, idle_s=0.5, deadline=None),
         "idle_timeout", 0.5),
        ("while true; do echo tick; sleep 0.05; done", Limits(step_s=1.0, idle_s=30, deadline=None),
         "step_timeout", 1.0),
    ],
)  # fmt: skip
async def test_a_limit_stops_the_process(
    tmp_path: Path, body: str, limits: Limits, stopped: str, limit_s: float
) -> None:
    result, chunks = await run(tmp_path, script(tmp_path, body), limits=limits)
    assert (result.stopped, result.limit_s) == (stopped, limit_s)
    assert limit_s <= result.duration_s < limit_s + 2
    assert result.exit_status == -15  # it took the SIGTERM
    assert "".join(chunks).startswith(("started", "tick"))


async def test_the_job_deadline_stops_the_process(tmp_path: Path) -> None:
    deadline = asyncio.get_running_loop().time() + 0.6
    limits = Limits(step_s=30, idle_s=30, deadline=deadline)
    result, _ = await run(tmp_path, script(tmp_path, "sleep 30"), limits=limits)
    assert result.stopped == "job_timeout"
    assert result.limit_s is not None and 0.5 < result.limit_s <= 0.6
    assert result.duration_s < 3


async def test_cancel_stops_the_whole_group_within_a_second(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    argv = script(tmp_path, f"""
        sleep 300 & a=$!
        (sleep 300 & echo $! > {pids}.inner; wait) & b=$!
        sleep 0.1; echo "$a $b $(cat {pids}.inner)" > {pids}.tmp; mv {pids}.tmp {pids}
        wait
    """)  # fmt: skip
    should_stop, turned = when(pids)
    result, _ = await run(tmp_path, argv, should_stop=should_stop)
    ended = asyncio.get_running_loop().time()
    assert result.stopped == "cancelled"
    assert ended - turned[0] < 1.0
    children = [int(pid) for pid in pids.read_text().split()]
    assert len(children) == 3
    assert not any(running(pid) for pid in children)  # grandchildren included


async def test_a_process_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    argv = script(tmp_path, f"""
        trap '' TERM
        sleep 300 & echo $! > {ready}.tmp; mv {ready}.tmp {ready}
        while true; do sleep 0.05; done
    """)  # fmt: skip
    should_stop, turned = when(ready)
    result, _ = await run(tmp_path, argv, should_stop=should_stop, grace_s=0.5)
    took = asyncio.get_running_loop().time() - turned[0]
    assert (result.stopped, result.exit_status) == ("cancelled", -9)
    assert 0.5 <= took < 2.0
    assert not running(int(ready.read_text()))


async def test_what_a_finished_program_left_running_is_ended(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = script(tmp_path, f"sleep 300 & echo $! > {pid_file}; echo done")
    result, chunks = await run(tmp_path, argv)
    assert (result.exit_status, result.stopped) == (0, None)
    assert "".join(chunks) == "done\n"
    assert result.duration_s < 5
    assert not running(int(pid_file.read_text()))


async def test_a_failing_cancel_check_is_not_a_cancel(tmp_path: Path) -> None:
    async def broken() -> bool:
        raise StoreUnavailable("the store is restarting")

    argv = script(tmp_path, "sleep 0.5; echo fine")
    result, chunks = await run(tmp_path, argv, should_stop=broken)
    assert (result.exit_status, result.stopped, "".join(chunks)) == (0, None, "fine\n")


async def test_a_consumer_error_stops_the_process_and_is_raised(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    async def fail(text: str) -> None:
        raise RuntimeError("the output store refused the write")

    argv = script(tmp_path, f"echo $$ > {pid_file}; echo hello; sleep 300")
    with pytest.raises(RuntimeError, match="refused"):
        await run_process(argv, cwd=tmp_path, env=minimal_env(tmp_path / "home"),
                          on_output=fail, limits=ROOMY, should_stop=never())  # fmt: skip
    assert not running(int(pid_file.read_text()))


async def test_cancelling_the_run_itself_leaves_nothing_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = script(
        tmp_path, f"sleep 300 & echo $! > {pid_file}.tmp; mv {pid_file}.tmp {pid_file}; wait"
    )
    task = asyncio.create_task(run(tmp_path, argv))
    while not pid_file.exists():
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not running(int(pid_file.read_text()))


async def test_a_program_that_is_not_there_fails_to_launch(tmp_path: Path) -> None:
    with pytest.raises(LaunchFailed, match=r"could not start 'no-such-cli'.*No such file"):
        await run(tmp_path, ["no-such-cli", "exec"])


async def test_the_minimal_environment_leaks_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_FAKE_SECRET", "leak-me-not-0123456789")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-passed-through-on-purpose")
    monkeypatch.setenv("LANG", "C.UTF-8")
    home = tmp_path / "home"
    env = minimal_env(home, passthrough=["OPENAI_API_KEY", "UNSET_NAME"], extra={"A_SECRET": "x"})
    chunks: list[str] = []

    async def collect(text: str) -> None:
        chunks.append(text)

    await run_process(["env"], cwd=tmp_path, env=env, on_output=collect, limits=ROOMY,
                      should_stop=never())  # fmt: skip
    seen = dict(line.split("=", 1) for line in "".join(chunks).splitlines())
    allowed = {*ALLOWED_ENV, "HOME", "TMPDIR", "OPENAI_API_KEY", "A_SECRET"}
    assert set(seen) <= allowed
    assert "leak-me-not" not in "".join(chunks)
    assert seen["HOME"] == str(home) and seen["TMPDIR"] == str(home / "tmp")
    assert (home / "tmp").is_dir()
    assert seen["OPENAI_API_KEY"] == "sk-passed-through-on-purpose"
    assert seen["LANG"] == "C.UTF-8" and seen["PATH"] == os.environ["PATH"]


def test_the_minimal_environment_reads_the_source_it_is_given(tmp_path: Path) -> None:
    source = {"PATH": "/bin", "TOKEN": "t", "TERM": "dumb", "SECRET": "s"}
    env = minimal_env(tmp_path, passthrough=["TOKEN"], source=source)
    assert env == {"PATH": "/bin", "TERM": "dumb", "TOKEN": "t", "HOME": str(tmp_path),
                   "TMPDIR": str(tmp_path / "tmp")}  # fmt: skip


async def test_under_a_pseudo_terminal_output_is_a_terminal_s_whole_and_no_pager_waits(
    tmp_path: Path,
) -> None:
    got: list[str] = []

    async def slow(text: str) -> None:  # a consumer behind the program: reads wait for it
        got.append(text)
        await asyncio.sleep(0.001)

    async def never() -> bool:
        return False

    script = ("test -t 1 && echo on-a-tty; head -c 3000000 /dev/zero | tr '\\0' x; echo;"
              "printf 'a\\nb\\n' | git --no-pager -c core.pager=less log 2>/dev/null; "
              "echo \"pager=$PAGER git=$GIT_PAGER\"")
    result = await run_process(["bash", "-c", script], cwd=tmp_path, env=minimal_env(tmp_path),
                               on_output=slow, limits=Limits(step_s=30, idle_s=10, deadline=None),
                               should_stop=never, terminal=True)  # fmt: skip
    text = "".join(got)
    assert result.exit_status == 0 and result.stopped is None
    assert text.startswith("on-a-tty\r\n") and text.count("x") == 3_000_000
    assert "pager=cat git=cat" in text
