"""The agent sandbox: every agent step (every runtime, `shell` included) runs in bubblewrap, as
untrusted code, in user, PID, IPC and UTS namespaces of its own (and a network one with
CAIRN_SANDBOX_NETWORK=none). What the step sees:

- the system read-only, without the folders that hold other people's secrets: every home (the
  worker user's included), /tmp, /var/tmp, /run, /var/lib, /var/log, /srv, /mnt, /media, the
  data dir and CAIRN_SANDBOX_HIDE, each under an empty read-only tmpfs;
- read-write: the attempt's `repo/` and `home/` (TMPDIR is `home/tmp`), and a private /tmp in
  memory (CAIRN_STEP_TMP_MAX, default 256 MiB);
- read-only, back where they were: the skills it was given, the CLIs the worker found (their
  package folders) and the PATH folders that a hidden folder holds;
- read-write, shared by every step: CAIRN_SANDBOX_SHARED (a package cache, say: the operator's
  choice; never a folder that holds the data dir or the worker's home);
- its own /proc (its own processes only) and a minimal /dev; stdin, stdout and stderr and no
  other descriptor; the environment the worker built for it, never the worker's.

A worker that runs as root runs its steps as CAIRN_SANDBOX_USER (default `nobody`), never as
root: a root step would own every root file the system shows and would not be held by the
process limit. Then a first bubblewrap, as root, makes the mounts (root reaches every folder it
binds) and the namespaces but the user one; `setpriv` drops to that user with no capability
left; a second bubblewrap makes the user namespace. The attempt's folders are handed to that
user before each step.

Limits: open files, processes and threads, one process's memory and one file's size
(RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_DATA, RLIMIT_FSIZE) and, watched while the step runs, all
its processes' resident memory, their count and the workspace's disk use: a step past one is
stopped with a reason naming it (docs/decisions/0007-agent-sandbox-and-store-users.md).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.commands.settings import SandboxSettings
from cairn.worker.workspace import Workspace

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf " \
               "install bubblewrap)"  # fmt: skip
USERNS_HINT = (
    "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu "
    "24.04 also kernel.apparmor_restrict_unprivileged_userns=0; in a container, run it with "
    "--security-opt seccomp=unconfined or a profile that allows clone with CLONE_NEWUSER)"
)
HIDDEN = ("/root", "/home", "/tmp", "/var/tmp", "/run", "/var/lib", "/var/log", "/var/spool",
          "/var/mail", "/var/backups", "/srv", "/mnt", "/media")  # fmt: skip
HIDING_TMPFS_BYTES = 1024 * 1024  # what a hiding tmpfs may hold: only mount points
PROBE_TIMEOUT_S = 10.0
WATCH_S = 0.5  # processes and memory
DISK_WATCH_S = 2.0  # the workspace's size (a walk of it)
TMP = Path("/tmp")
AGENT_RUNTIMES = ("codex", "claude", "gemini", "shell")  # what runs as an agent step
PR_SET_DUMPABLE = 4


@dataclass(frozen=True)
class SandboxCheck:
    """Whether this machine can run steps in the sandbox, and if not, why and what to do."""

    ok: bool
    reason: str | None = None

    def line(self) -> str:
        return "sandbox: bubblewrap" if self.ok else f"sandbox: unavailable: {self.reason}"


@dataclass(frozen=True)
class StepUser:
    """Who a step runs as: the worker's own user, or CAIRN_SANDBOX_USER when that is root."""

    uid: int
    gid: int
    switch: bool  # whether the worker (root) switches to it for the step


@dataclass
class Breach:
    code: str  # memory_limit, process_limit, disk_limit
    message: str


@dataclass
class Sandbox:
    """How this worker runs agent steps: in bubblewrap (`enabled`), or, with CAIRN_SANDBOX=off,
    as before, every run marked "not sandboxed"."""

    settings: SandboxSettings
    data_dir: Path
    bwrap: str | None = None
    prlimit: str = "prlimit"
    setpriv: str = "setpriv"
    user: StepUser | None = None
    check: SandboxCheck = field(default_factory=lambda: SandboxCheck(False, "not checked"))

    @property
    def enabled(self) -> bool:
        return self.settings.mode != "off"

    @property
    def usable(self) -> bool:
        """Whether agent steps may run here: sandboxed, or the operator switched it off."""
        return not self.enabled or self.check.ok

    def describe(self) -> dict[str, Any]:
        """What `job.step_started` and the run page say of the step's sandbox."""
        if not self.enabled:
            return {"kind": "none", "reason": "not sandboxed (CAIRN_SANDBOX=off on this worker)"}
        s = self.settings
        return {
            "kind": "bubblewrap",
            "network": s.network,
            "user": self._user_name(),
            "limits": {"memory_bytes": s.memory_max, "processes": s.processes_max,
                       "open_files": s.open_files_max, "disk_bytes": s.disk_max},
        }  # fmt: skip

    def summary(self) -> str:
        """A few words for the workers page: how its agent steps run."""
        if not self.enabled:
            return "off: not sandboxed (CAIRN_SANDBOX=off)"
        if not self.check.ok:
            return f"unavailable: {self.check.reason}; takes no agent jobs"
        return f"bubblewrap as {self._user_name()}, network {self.settings.network}"

    def _user_name(self) -> str:
        uid = self.user.uid if self.user else os.getuid()
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)

    def command(
        self, argv: Sequence[str], workspace: Workspace, *, read_only: Iterable[Path] = ()
    ) -> list[str]:
        """The command line that runs `argv` in the sandbox for this attempt (`read_only`: more
        folders the step may read, such as its CLI's install)."""
        if not self.enabled:
            return list(argv)
        assert self.bwrap is not None and self.user is not None
        s = self.settings
        namespaces = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
                      "--hostname", "cairn-sandbox"]  # fmt: skip
        if s.network == "none":
            namespaces.append("--unshare-net")
        limits = [self.prlimit, f"--nofile={s.open_files_max}", f"--nproc={s.processes_max}",
                  f"--data={s.memory_max}", f"--fsize={s.disk_max}", "--core=0", "--"]  # fmt: skip
        files = self._filesystem(workspace, read_only)
        step = ["--chdir", str(workspace.repo), "--", *argv]
        if not self.user.switch:
            return [*limits, self.bwrap, "--unshare-user", "--new-session", *namespaces,
                    *files, *step]  # fmt: skip
        # Root: the mounts as root (it reaches every folder it binds), then the step's user,
        # with no capability left, in a user namespace of its own.
        drop = [self.setpriv, f"--reuid={self.user.uid}", f"--regid={self.user.gid}",
                "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        inner = [self.bwrap, "--unshare-user", "--die-with-parent", "--new-session",
                 "--dev-bind", "/", "/"]  # fmt: skip
        return [self.bwrap, *namespaces, *files, "--cap-add", "CAP_SETUID", "--cap-add",
                "CAP_SETGID", "--", *drop, *limits, *inner, *step]  # fmt: skip

    def _filesystem(self, workspace: Workspace, read_only: Iterable[Path]) -> list[str]:
        hidden = hidden_paths(self.data_dir, self.settings.hide)
        args = ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        for path in hidden:
            size = self.settings.tmp_max if path == TMP else HIDING_TMPFS_BYTES
            args += ["--perms", "01777" if path == TMP else "0755", "--size", str(size),
                     "--tmpfs", str(path)]  # fmt: skip
        readable = sorted({p for p in _existing(read_only) if _under(p, hidden)}, key=_depth)
        shared = sorted(_existing(Path(p) for p in self.settings.shared), key=_depth)
        writable = [*shared, workspace.repo, workspace.home]
        skills = _skill_targets(workspace)
        made: set[Path] = set()
        for path, how in [*((p, "--ro-bind") for p in readable),
                          *((p, "--bind") for p in writable),
                          *((p, "--ro-bind") for p in skills)]:  # fmt: skip
            # The folders down to a mount point, inside a hiding tmpfs: passable, not listable.
            for parent in reversed(path.parents):
                if parent not in made and _under(parent, hidden) and parent not in hidden:
                    made.add(parent)
                    args += ["--perms", "0711", "--dir", str(parent)]
            args += [how, str(path), str(path)]
        for path in hidden:  # each hiding tmpfs read-only (/tmp aside); binds in it keep theirs
            if path != TMP:
                args += ["--remount-ro", str(path)]
        return args

    def hand_over(self, workspace: Workspace) -> None:
        """Before a step, when the worker is root: the attempt's folders to the step's user
        (what the worker wrote since the last step too: sign-in files, git's objects)."""
        user = self.user
        if not self.enabled or user is None or not user.switch:
            return
        for folder in (workspace.repo, workspace.home):
            _chown_tree(folder, user.uid, user.gid)

    def guard(self, workspace: Workspace) -> Guard:
        return Guard(self.settings, [workspace.repo, workspace.home], enabled=self.enabled)


def set_undumpable() -> None:
    """PR_SET_DUMPABLE off for this process: a process of the same user (a step when the
    sandbox is off, anything else on the machine) can no longer read its /proc entries
    (environ, mem, fds) or ptrace it."""
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def prepare_sandbox(settings: SandboxSettings, data_dir: Path) -> Sandbox:
    """The worker's sandbox, checked once at start: bubblewrap found, and a trial run of it."""
    sandbox = Sandbox(settings, data_dir.resolve())
    if not sandbox.enabled:
        sandbox.check = SandboxCheck(False, "switched off (CAIRN_SANDBOX=off)")
        return sandbox
    sandbox.user = _step_user(settings.user)
    sandbox.bwrap = shutil.which("bwrap")
    if sandbox.bwrap is None:
        sandbox.check = SandboxCheck(False, f"bubblewrap (bwrap) is not on PATH: {INSTALL_HINT}")
        return sandbox
    for tool in ("prlimit", "setpriv"):
        found = shutil.which(tool)
        if found is None:
            sandbox.check = SandboxCheck(False, f"{tool} is not on PATH: install util-linux")
            return sandbox
        setattr(sandbox, tool, found)
    sandbox.check = _trial(sandbox)
    return sandbox


def _step_user(name: str) -> StepUser:
    if os.getuid() != 0:
        return StepUser(os.getuid(), os.getgid(), switch=False)
    try:
        entry = pwd.getpwnam(name)
        return StepUser(entry.pw_uid, entry.pw_gid, switch=True)
    except KeyError:
        if name.isdigit():
            return StepUser(int(name), int(name), switch=True)
        raise ValueError(f"CAIRN_SANDBOX_USER: no user {name!r} on this machine") from None


def _trial(sandbox: Sandbox) -> SandboxCheck:
    """Run `true` as a step would run, in a throwaway workspace."""
    from cairn.worker.workspace import make_workspace, remove_workspace

    try:
        workspace = make_workspace(sandbox.data_dir, "sandbox-check", os.getpid())
    except OSError as e:
        return SandboxCheck(False, f"cannot make a workspace in {sandbox.data_dir}: {e}")
    try:
        sandbox.hand_over(workspace)
        argv = sandbox.command(["true"], workspace)
        try:
            done = subprocess.run(
                argv, env={"PATH": os.environ.get("PATH", os.defpath)}, capture_output=True,
                text=True, timeout=PROBE_TIMEOUT_S, check=False,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as e:
            return SandboxCheck(False, f"bubblewrap could not start: {e}")
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["no output"])[-1]
            hint = USERNS_HINT if "namespace" in said or "Operation not permitted" in said \
                else INSTALL_HINT  # fmt: skip
            return SandboxCheck(False, f"bubblewrap failed: {said}; {hint}")
        return SandboxCheck(True)
    finally:
        remove_workspace(workspace)


def hidden_paths(data_dir: Path, extra: Iterable[str] = ()) -> list[Path]:
    """The folders a step sees empty: existing ones, outermost first, none inside another."""
    found = [Path(p) for p in (*HIDDEN, str(Path.home()), str(data_dir), *extra) if p]
    real = {p.resolve() for p in found if p.is_dir() and not p.is_symlink()}
    return sorted((p for p in real if not _under(p, real - {p})), key=_depth)


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _depth(path: Path) -> tuple[int, str]:
    return len(path.parts), str(path)


def _existing(paths: Iterable[Path]) -> Iterable[Path]:
    for path in paths:
        with suppress(OSError):
            real = path.resolve()
            if real.is_dir():
                yield real


def _skill_targets(workspace: Workspace) -> list[Path]:
    """The skills' read-only copies the attempt's links lead to."""
    targets: list[Path] = []
    if workspace.skills_active.is_dir():
        targets.append(workspace.skills_active)
        for link in workspace.skills_active.iterdir():
            with suppress(OSError):
                targets.append(link.resolve())
    return targets


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give `root` and what is below it to uid:gid, links themselves, never followed."""
    stack = [str(root)]
    with suppress(OSError):
        os.lchown(root, uid, gid)
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            with suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                if info.st_uid != uid or info.st_gid != gid:
                    os.lchown(entry.path, uid, gid)
                if stat.S_ISDIR(info.st_mode):
                    stack.append(entry.path)


class Guard:
    """Watches one running step: its processes (every descendant of bubblewrap, in its own PID
    namespace whatever session they made), their resident memory and the workspace's size."""

    def __init__(self, settings: SandboxSettings, folders: list[Path], *, enabled: bool) -> None:
        self.settings, self.folders, self.enabled = settings, folders, enabled
        self.breach: Breach | None = None
        self.pid: int | None = None
        self.peak_memory = self.peak_processes = 0
        self._task: asyncio.Task[None] | None = None

    def started(self, pid: int) -> None:
        """A run of the step's command began (a steered step has several): watch it."""
        self.pid = pid
        if self._task is not None:
            self._task.cancel()  # the last run's watch: its processes are gone
        if self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self.enabled and self.breach is None:
            await asyncio.to_thread(self._check_disk)  # a file cut at the limit by RLIMIT_FSIZE

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        next_disk = loop.time() + DISK_WATCH_S
        while self.breach is None:
            await asyncio.to_thread(self._check_processes)
            if self.breach is None and loop.time() >= next_disk:
                await asyncio.to_thread(self._check_disk)
                next_disk = loop.time() + DISK_WATCH_S
            await asyncio.sleep(WATCH_S)

    def _check_processes(self) -> None:
        assert self.pid is not None
        members = descendants(self.pid)
        memory = sum(_resident(pid) for pid in members)
        tasks = sum(members.values())
        self.peak_memory = max(self.peak_memory, memory)
        self.peak_processes = max(self.peak_processes, tasks)
        s = self.settings
        # The kernel refuses a fork past RLIMIT_NPROC (threads count): a step that keeps
        # trying near it is a fork bomb or a runaway build, stopped rather than left spinning.
        if tasks >= s.processes_max * 0.9:
            self.breach = Breach("process_limit", f"ran {tasks} processes and threads at once, "
                                 f"near the limit (CAIRN_STEP_PROCESSES_MAX) of "
                                 f"{s.processes_max}")  # fmt: skip
        elif memory > s.memory_max:
            self.breach = Breach("memory_limit", f"its processes used {_size(memory)} of "
                                 f"memory, past the limit (CAIRN_STEP_MEMORY_MAX) of "
                                 f"{_size(s.memory_max)}")  # fmt: skip

    def _check_disk(self) -> None:
        used = sum(disk_usage(folder) for folder in self.folders)
        if used >= self.settings.disk_max:
            self.breach = Breach("disk_limit", f"its workspace grew to {_size(used)}, the limit "
                                 f"(CAIRN_STEP_DISK_MAX) is {_size(self.settings.disk_max)}")

    def stopping(self) -> str | None:
        """The breach code, once the step went past a limit."""
        return self.breach.code if self.breach else None


def descendants(pid: int) -> dict[int, int]:
    """`pid`'s descendants that still run (zombies do not count), `pid` itself not, each with
    its number of threads."""
    children: dict[int, list[int]] = {}
    threads: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat_line = f.read()
        except OSError:
            continue
        fields = stat_line[stat_line.rfind(b")") + 2 :].split()
        if len(fields) > 17 and fields[0] not in (b"Z", b"X"):
            children.setdefault(int(fields[1]), []).append(int(entry))
            threads[int(entry)] = int(fields[17])
    found: dict[int, int] = {}
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found[child] = threads.get(child, 1)
        stack.extend(children.get(child, []))
    return found


def _resident(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def disk_usage(root: Path) -> int:
    """Bytes `root` takes on disk (each inode once; links not followed)."""
    seen: set[tuple[int, int]] = set()
    total, stack = 0, [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
    return total


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def cli_folders(paths: Mapping[str, Path | None], env_path: str) -> list[Path]:
    """What a step may need to read that a hidden folder could hold: each CLI's package folder
    (its binary resolved, up to the folder above `node_modules`) and every PATH folder."""
    folders = [Path(p) for p in env_path.split(os.pathsep) if p]
    for binary in paths.values():
        if binary is None:
            continue
        real = binary.resolve()
        folders.append(real.parent)
        for parent in real.parents:
            if parent.name == "node_modules":
                folders.append(parent)
                break
    return folders
