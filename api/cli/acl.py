"""`cairn acl`: the Redis ACL users Cairn's processes connect as, one per process kind, each with
only the commands and keys it needs, written as an ACL file for the server (`aclfile`) with a
password per user (kept in the output folder, 0600; the file holds only their SHA-256).

| user | keys | may |
|---|---|---|
| api | every key of the install | read and write (commands, tokens, sessions, read models) |
| projector | the partitions' keys | read logs, keep consumer groups, write read models |
| scheduler | partitions, dispatch slot, worker presence | append, dispatch, reap |
| worker | partitions, dispatch slot, worker presence | claim, append, output, settle |
| auditor | the partition logs, read only | XRANGE, XREVRANGE, XREAD, XINFO, XLEN |

The default user is switched off, so nothing connects without one of these. Maintenance commands
run as: `cairn tail`, `cairn export` as auditor; `cairn rebuild` as projector; `cairn token`,
`cairn import`, `cairn archive` as api."""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cairn.commands.settings import Settings

KINDS = ("api", "projector", "scheduler", "worker", "auditor")
CONNECTION = ["ping", "client|setinfo", "client|setname", "client|getname"]
SCRIPTS = ["eval", "evalsha", "script|load", "script|exists"]
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
AUDIT = ["ping", "client|setinfo", "xrange", "xrevrange", "xread", "xinfo", "xlen"]


def key_patterns(kind: str, prefix: str) -> list[str]:
    """The keys a kind may touch (`%R~` read only)."""
    partitions, dispatch = f"~{prefix}:{{p*}}:*", f"~{prefix}:{{dispatch}}:*"
    presence = [f"~{prefix}:sys:workers", f"~{prefix}:sys:worker-pause*"]
    return {
        "api": [f"~{prefix}:*"],
        "projector": [partitions],
        "scheduler": [partitions, dispatch, *presence],
        "worker": [partitions, dispatch, *presence],
        "auditor": [f"%R~{prefix}:{{p*}}:log"],
    }[kind]


def commands(kind: str) -> list[str]:
    if kind == "auditor":
        return AUDIT
    return CONNECTION + SCRIPTS + TRANSACTIONS + READS + WRITES


def acl_line(kind: str, prefix: str, password: str) -> str:
    """One `user` line of an ACL file: on, the password's hash, no channels, nothing but the
    listed commands on the listed keys."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    allowed = " ".join(f"+{c}" for c in commands(kind))
    keys = " ".join(key_patterns(kind, prefix))
    return f"user {user_name(kind, prefix)} on #{digest} resetchannels {keys} -@all {allowed}"


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
                  "projector, scheduler, worker, auditor), with passwords")  # fmt: skip
    acl.add_argument("--dir", default="acl", help="where users.acl and the passwords go "
                     "(default ./acl)")  # fmt: skip
    acl.add_argument("--address", default="redis:6379",
                     help="host:port the printed URLs name (default redis:6379, compose's)")
