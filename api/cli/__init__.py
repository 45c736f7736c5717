"""The `cairn` command: run the processes (up, api, projector, scheduler, worker) and look at
the log (status, tail, replay, rebuild, redis-cli). Settings are read here, once, and passed in.
Without CAIRN_REDIS_URL, a command talks to the store of the `cairn up` that runs with its data
directory (CAIRN_DATA_DIR, default ./.cairn)."""

from cairn.api.cli.main import main

__all__ = ["main"]
