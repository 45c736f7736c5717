"""`cairn acl`: the Redis ACL users Cairn's processes connect as, one per process kind, each with
only the commands and keys it needs, written as an ACL file for the server (`aclfile`) with a
password per user (kept in the output folder, 0600; the file holds only their SHA-256).
`cairn up` makes the same users on its embedded server (store_users.py).

| user | keys | may |
|---|---|---|
| api | every key of the install | read and write; loads Cairn's functions |
| projector | the partitions' keys | read logs, keep consumer groups, write read models |
| scheduler | partitions, dispatch slot, worker presence | append, dispatch, reap |
| worker | partitions, dispatch slot, worker presence | claim, append, output, settle |
| archiver | the partition logs and aggregate lists | move archived events out |
| auditor | the partition logs, read only | XRANGE, XREVRANGE, XREAD, XINFO, XLEN |

Nobody may EVAL: Cairn's Lua runs as Redis Functions, loaded by the API (or `cairn up`'s
admin), which the others FCALL (streams/functions.py). A partition log and an aggregate's list
take only appends from the projector, the scheduler and the worker: their root permissions hold
reads, XADD and RPUSH; their other writes go through a selector naming their other keys only,
so DEL, UNLINK, XDEL, XTRIM, SET or EXPIRE of a log is refused, from a function as from a client
(docs/decisions/0007-agent-sandbox-and-store-users.md). The default user is switched off, so
nothing connects without one of these. Maintenance commands run as: `cairn tail`, `cairn export`
as auditor; `cairn rebuild` as projector; `cairn archive` as archiver; `cairn token`, `cairn
import` as api."""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cairn.commands.settings import Settings

KINDS = ("api", "projector", "scheduler", "worker", "archiver", "auditor")
CONNECTION = ["ping", "client|setinfo", "client|setname", "client|getname"]
FUNCTIONS = ["fcall", "fcall_ro"]
LOADING = ["function|load", "function|list"]
TRANSACTIONS = ["multi", "exec", "discard", "watch", "unwatch"]
READS = [
    "get", "mget", "exists", "type", "ttl", "pttl", "scan", "hget", "hmget", "hgetall", "hkeys",
    "hvals", "hexists", "hlen", "llen", "lrange", "lindex", "smembers", "sismember", "scard",
    "zrange", "zrangebylex", "zrangebyscore", "zrevrange", "zrevrangebylex", "zrevrangebyscore",
    "zcard", "zscore", "zrank", "xrange", "xrevrange", "xlen", "xread", "xinfo", "xpending",
]  # fmt: skip
WRITES = [
    "set", "del", "unlink", "expire", "pexpire", "hset", "hdel", "hincrby", "rpush", "sadd",
    "srem", "zadd", "zrem", "zremrangebylex", "xadd", "xack", "xdel", "xclaim", "xautoclaim",
    "xgroup", "xreadgroup", "xtrim",
]  # fmt: skip
APPEND = ["xadd", "rpush"]  # all that reaches a log or an aggregate's list, for most users
GROUPS = ["xreadgroup", "xack", "xgroup|create", "xgroup|createconsumer", "xgroup|setid",
          "xgroup|destroy", "xgroup|delconsumer",
          "xautoclaim", "xclaim"]  # the projector's consumer groups, on the logs  # fmt: skip
ARCHIVE = ["xdel", "del", "rpush"]  # archive.lua: entries out of a log, a list's markers in
AUDIT = ["ping", "client|setinfo", "xrange", "xrevrange", "xread", "xinfo", "xlen"]


def _partition(prefix: str, *families: str) -> list[str]:
    return [f"~{prefix}:{{p*}}:{family}" for family in families]


def rules(kind: str, prefix: str) -> list[str]:
    """The kind's permissions after `-@all`: root commands and keys, then selectors, each a
    parenthesised group (one argument of ACL SETUSER, one word of an ACL file line)."""
    partitions, dispatch = f"~{prefix}:{{p*}}:*", f"~{prefix}:{{dispatch}}:*"
    presence = [f"~{prefix}:sys:workers", f"~{prefix}:sys:worker-pause*"]
    # A partition's keys other than its log and its aggregates' lists.
    others = _partition(prefix, "rm:*", "lock:*", "cmd:*", "preview:*", "out:*", "live:*")
    base = [*CONNECTION, *FUNCTIONS, *TRANSACTIONS, *READS]
    if kind == "api":  # getdel: a live session's ticket is redeemed once (streams/live.py)
        return [f"~{prefix}:*", *_plus(base + LOADING + WRITES + ["getdel"])]
    if kind == "auditor":
        return [f"%R~{prefix}:{{p*}}:log", *_plus(AUDIT)]
    if kind == "archiver":
        return [partitions, *_plus(base + ARCHIVE)]
    keys = [partitions] if kind == "projector" else [partitions, dispatch, *presence]
    root = base + APPEND + (GROUPS if kind == "projector" else [])
    mutable = others if kind == "projector" else [*others, dispatch, *presence]
    return [*keys, *_plus(root), _selector(mutable, WRITES)]


def _plus(commands: list[str]) -> list[str]:
    return [f"+{c}" for c in dict.fromkeys(commands)]


def _selector(keys: list[str], commands: list[str]) -> str:
    return "(" + " ".join([*keys, *_plus(commands)]) + ")"


def acl_line(kind: str, prefix: str, password: str) -> str:
    """One `user` line of an ACL file: on, the password's hash, no channels, nothing but the
    kind's commands on its keys."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return " ".join([f"user {user_name(kind, prefix)} on #{digest} resetchannels -@all",
                     *rules(kind, prefix)])  # fmt: skip


def setuser_args(kind: str, prefix: str, password: str) -> list[str]:
    """The same user as ACL SETUSER's arguments (after the name), from a clean slate."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return ["reset", "on", f"#{digest}", "resetchannels", "-@all", *rules(kind, prefix)]


def user_name(kind: str, prefix: str) -> str:
    return f"{prefix}-{kind}"


def acl_file(prefix: str, passwords: dict[str, str]) -> str:
    lines = ["user default off"]  # an ACL file holds `user` lines only: no comments
    lines += [acl_line(kind, prefix, passwords[kind]) for kind in KINDS]
    return "\n".join(lines) + "\n"


def passwords_in(folder: Path) -> dict[str, str]:
    """Each kind's password from `folder/<kind>.password`, made (0600) when missing: running
    `cairn acl` again keeps them, so the processes' URLs stay valid."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = {}
    for kind in KINDS:
        path = folder / f"{kind}.password"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
        found[kind] = path.read_text().strip()
    return found


def redis_url(kind: str, prefix: str, password: str, address: str) -> str:
    """The CAIRN_REDIS_URL a process of `kind` connects with."""
    user = quote(user_name(kind, prefix), safe="")
    return f"redis://{user}:{quote(password, safe='')}@{address}/0"


def write_acl(settings: Settings, args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    passwords = passwords_in(folder)
    target = folder / "users.acl"
    target.write_text(acl_file(settings.prefix, passwords))
    # Readable by the server's own user (the redis image drops to uid 999): the file holds only
    # SHA-256 hashes of the passwords, which stay 0600 beside it.
    target.chmod(0o644)
    # For `docker compose --env-file acl/compose.env up`: compose.yaml names these.
    env = folder / "compose.env"
    env.write_text("".join(f"CAIRN_{kind.upper()}_REDIS_PASSWORD={passwords[kind]}\n"
                           for kind in KINDS))  # fmt: skip
    env.chmod(0o600)
    print(f"wrote {target} (load it with `aclfile {target.resolve()}`) and a password per "
          f"user in {folder}; each process's CAIRN_REDIS_URL:")  # fmt: skip
    for kind in KINDS:
        secret = f"$(cat {folder}/{kind}.password)"  # the shell reads it; never printed here
        print(f"  {kind:<9} redis://{user_name(kind, settings.prefix)}:{secret}@{args.address}/0")
    return 0


def add_commands(command: Any) -> None:
    """`cairn acl`, on the main parser's `command` maker."""
    acl = command("acl", write_acl, "write Redis ACL users, one per process kind (api, "
                  "projector, scheduler, worker, archiver, auditor), with passwords")  # fmt: skip
    acl.add_argument("--dir", default="acl", help="where users.acl and the passwords go "
                     "(default ./acl)")  # fmt: skip
    acl.add_argument("--address", default="redis:6379",
                     help="host:port the printed URLs name (default redis:6379, compose's)")
