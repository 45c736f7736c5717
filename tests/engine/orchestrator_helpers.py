"""What the orchestrator tests share (the engine's and the dashboard's): a real "service" (a
small HTTP server that the catalog's `restart` command starts from its checkout and writes a
pid file for), its repository, and the stand-in agent that plans and patches it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cairn.streams.server import free_port
from tests.worker.conftest import Seeded, make_remote, run_git

SERVER = """import http.server, os, sys
port, pidfile = int(sys.argv[1]), sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(os.path.join(here, "config.txt")) as f:
            ok = f.read().splitlines()[:1] == ["ok"]
        self.send_response(200 if ok else 500)
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"unhealthy")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Health)
with open(pidfile, "w") as f:
    f.write(str(os.getpid()))
server.serve_forever()
"""

# The agent: `analyze` prints a plan and touches nothing; `patch` does what the test wrote in
# the shared `action` file (a line of shell, run in the checkout).
AGENT = """#!/bin/sh
[ "$1" = "--version" ] && {{ echo "fake 0.0.0"; exit 0; }}
for last; do :; done
case "$last" in
  *"Analyze only"*) echo "Plan: set app/config.txt to ok"; exit 0;;
esac
sh "{shared}/action"
echo "patched"
"""

# The operator's restart: stop the last server (its pid file), start one from this checkout,
# detached (setsid: the command's own process group ends with it), and wait for its pid file.
# `hold` in the shared folder keeps it waiting (a worker killed mid-restart).
RESTART = """pid=$(cat {pidfile} 2>/dev/null); if [ -n "$pid" ]; then kill $pid 2>/dev/null;
while kill -0 $pid 2>/dev/null; do sleep 0.05; done; fi; rm -f {pidfile}
while [ -f {shared}/hold ]; do sleep 0.1; done
setsid {python} app/server.py {port} {pidfile} >/dev/null 2>&1 </dev/null &
for i in $(seq 100); do [ -s {pidfile} ] && exit 0; sleep 0.05; done; exit 1"""


def seed_service(root: Path) -> Seeded:
    """The service's repository: its server, and a config that fails its health check."""
    remote = make_remote(root, "acme/billing")
    remote.commit("app/server.py", SERVER, message="the service")
    remote.commit("app/config.txt", "broken\n", message="a bad deploy")
    return remote


def write_agent(path: Path, shared: Path) -> None:
    """The stand-in agent CLI at `path`, its `patch` step running `shared`/action."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(AGENT.format(shared=shared))
    path.chmod(0o755)


class Service:
    """The service under test: `shared` is the folder its steps and the test share (the pid
    file, the agent's action), `tmp` where its first deploy is checked out."""

    def __init__(self, shared: Path, tmp: Path, remote: Seeded) -> None:
        self.shared, self.tmp, self.remote = shared, tmp, remote
        self.port = free_port()
        self.pidfile = shared / "service.pid"
        self.url = f"http://127.0.0.1:{self.port}/health"

    def restart_command(self) -> str:
        return RESTART.format(pidfile=self.pidfile, shared=self.shared, python=sys.executable,
                              port=self.port)  # fmt: skip

    def spec(self, **more: Any) -> dict[str, Any]:
        return {
            "name": "billing", "repository": str(self.remote.bare), "branch": "main",
            "allowedPaths": ["app/config.txt", "app/*.py"],
            "build": {"run": f"{sys.executable} -m py_compile app/server.py", "timeoutSeconds": 60},
            "restart": {"run": self.restart_command(), "timeoutSeconds": 60},
            "verify": {"http": {"url": self.url, "retries": 6, "windowSeconds": 1.5}},
            "logs": {"run": "echo 'GET /health 500 since the deploy'", "timeoutSeconds": 10},
            **more,
        }  # fmt: skip

    def health(self) -> int | str:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except OSError as e:
            return type(e).__name__

    def start(self) -> None:
        """The service as it runs before any run: from a checkout of the branch."""
        checkout = self.tmp / "deployed"
        run_git("clone", "-q", str(self.remote.bare), str(checkout))
        subprocess.run(["bash", "-c", self.restart_command()], cwd=checkout, check=True)

    def stop(self) -> None:
        if self.pidfile.exists():
            with_pid = self.pidfile.read_text().strip()
            if with_pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(with_pid), signal.SIGTERM)

    def branch_log(self) -> list[str]:
        run_git("fetch", "-q", "origin", cwd=self.remote.seed)
        return run_git("log", "--format=%s%n%b%x1e", "origin/main", cwd=self.remote.seed
                       ).split("\x1e")  # fmt: skip

    def head(self) -> str:
        run_git("fetch", "-q", "origin", cwd=self.remote.seed)
        return run_git("rev-parse", "origin/main", cwd=self.remote.seed).strip()
