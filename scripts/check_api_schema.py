"""Fuzz the API against its own OpenAPI document with schemathesis, and fail on any server
error, schema violation or broken promise.

Starts a throwaway embedded server, the projector and the API (behind uvicorn, as served),
then runs `schemathesis run` over every operation with a bounded number of examples and
prints its summary. Exit status: schemathesis's (0 when every check passed).

    .venv/bin/python scripts/check_api_schema.py [--max-examples N] [--seed S]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from cairn.api.app import create_app
from cairn.api.auth import store_token
from cairn.api.http11 import H11Protocol
from cairn.commands.settings import Settings
from cairn.projections.catalog import all_projections
from cairn.projections.projector import run_projections
from cairn.streams.connection import connect
from cairn.streams.keys import Keys
from cairn.streams.server import free_port, start_server

TOKEN = "schema-check-" + "0123456789abcdef" * 2

# Every check runs, but object_level_authorization (it needs a second account). Where the
# job contract decides, a body the schema allows may still be refused (422 naming the path):
# a job's payload (a task needs instructions or a skill, a repository of one of three forms,
# ...), a quick run's repository, and a run of a task whose spec is not a valid payload; so
# does a schedule's job (and its cron's calendar: no 31 February); a template's inputs are
# its own (expand refuses one it does not declare), a project's repository is one of three forms
# and its default branch must be a name git accepts (the schema says the enums and patterns of the
# other settings, which the check holds), and a template's rules cross its fields
# (names declared once, every placeholder declared); a PRD import's plan crosses its tasks
# (keys unique, each dependency a key of the plan, no cycle) and takes source or plan, not
# both. Those operations are not held to accepting every schema-valid request; all other
# checks hold.
#
# A request the schema refuses may also be too large for the body limit: 413 is a refusal too
# (schemathesis's default list of refusals lacks it).
CONFIG = """
[checks]
object_level_authorization.enabled = false
negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "405", "406", "409",
                                             "413", "415", "422", "428", "429", "431"]

[[operations]]
include-operation-id = ["post_job", "put_job", "post_quick_run", "post_run", "post_schedule",
                        "post_template", "post_template_expand", "post_preview", "post_commit",
                        "post_project", "patch_project", "post_service", "put_service"]
checks.positive_data_acceptance.enabled = false

# A PRD's source may be 200,000 characters: Hypothesis builds no string past 8,192, so the
# fuzzing phase cannot make a longer one to be refused (it stops with "min_size is larger than
# Hypothesis supports"); their refusals of bad input are fuzzed by the coverage phase.
[[operations]]
include-operation-id = ["post_preview", "post_commit"]
phases.fuzzing.generation.mode = "positive"
"""


def serve(settings: Settings, port: int, ready: threading.Event, stop: threading.Event) -> None:
    """The projector and the API on their own loop, until `stop` is set."""

    async def main() -> None:
        client = connect(str(settings.redis_url))
        keys = Keys(settings.prefix, settings.partitions)
        await store_token(client, keys, TOKEN, "admin", "admin")
        halt = asyncio.Event()
        projector = asyncio.create_task(
            run_projections(client, keys, list(all_projections().values()), halt, lease_ms=3000)
        )
        config = uvicorn.Config(
            create_app(settings, client), port=port, log_level="critical", lifespan="off",
            http=H11Protocol, access_log=False,
        )  # fmt: skip
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        server.should_exit = True
        halt.set()
        await serving
        await projector
        await client.aclose()

    asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=25, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=1, help="for a reproducible run")
    parser.add_argument("--max-time", type=int, default=150, help="seconds for the whole run")
    args, args.extra = parser.parse_known_args()  # the rest go to `schemathesis run`
    with tempfile.TemporaryDirectory(prefix="cairn-schema-") as tmp:
        store = start_server(Path(tmp) / "redis", persist=False)
        try:
            settings = Settings(
                redis_url=store.url, prefix="schema", partitions=4, data_dir=Path(tmp),
                read_your_writes_timeout_s=0.5,  # a position from the future waits this long
                default_repository="acme/app",  # so that a run needs no repository of its own
            )  # fmt: skip
            config = Path(tmp) / "schemathesis.toml"
            config.write_text(CONFIG)
            port = free_port()
            ready, stop = threading.Event(), threading.Event()
            thread = threading.Thread(target=serve, args=(settings, port, ready, stop))
            thread.start()
            try:
                if not ready.wait(30):
                    print("the API did not start", file=sys.stderr)
                    return 2
                return run_schemathesis(port, config, args)
            finally:
                stop.set()
                thread.join(30)
        finally:
            store.stop()


def run_schemathesis(port: int, config: Path, args: argparse.Namespace) -> int:
    binary = Path(sys.executable).with_name("schemathesis")
    command = [
        str(binary), "--no-color", "--config-file", str(config),
        "run", f"http://127.0.0.1:{port}/openapi.json",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--max-examples", str(args.max_examples),
        "--seed", str(args.seed),
        "--max-time", str(args.max_time),
        "--workers", "1",
        "--phases", "examples,coverage,fuzzing",
        "--suppress-health-check", "data_too_large,filter_too_much,too_slow,large_base_example",
        "--request-timeout", "10",
        *args.extra,
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, check=False)
    print(f"schema check: exit {done.returncode} in {time.monotonic() - started:.0f}s")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
