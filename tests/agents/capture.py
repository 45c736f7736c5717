"""Record what the pinned agent CLIs print for each way a step can fail (and one that
succeeds), run as a worker's step runs them against the scripted model server. The samples are
what tests/worker/agents/test_failures.py and test_usage.py read; run this again when a pin
moves:

    .venv/bin/python -m tests.agents.capture [tests/worker/agents/samples]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tests.agents.clis import RUNTIMES, run_like_a_step
from tests.agents.model_server import ModelServer, Turn, command, status, text, write

OUT = Path(__file__).resolve().parents[1] / "worker" / "agents" / "samples"
# The CLIs retry a failing endpoint for minutes on their own: told fewer tries, as an operator
# may (CAIRN_AGENT_ENV, the gemini template), the samples end in what they print at the end.
FEWER_RETRIES = {"CLAUDE_CODE_MAX_RETRIES": "1"}
CASES: dict[str, list[Turn]] = {
    "ok": [write("hello.txt", "hello\n"), command("echo ran"), text("Wrote hello.txt.")],
    "401": [status(401, times=99)],
    "404": [status(404, times=99)],
    "429": [status(429, retry_after=2, times=99)],
    "500": [status(500, times=99)],
    "nokey": [text("unreachable")],
}


def capture(out: Path) -> dict[str, dict[str, object]]:
    server = ModelServer(key="test-key").start()
    index: dict[str, dict[str, object]] = {}
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in RUNTIMES:
            for case, turns in CASES.items():
                marker = server.script(f"SCRIPT-{runtime}-{case}", turns)
                env = dict(FEWER_RETRIES)
                if case == "nokey":
                    env.update(ANTHROPIC_API_KEY="", OPENAI_API_KEY="", GEMINI_API_KEY="")
                ran = run_like_a_step(runtime, f"Say hello. {marker}", server,
                                      Path(tmp) / f"{runtime}-{case}", env=env, timeout=180,
                                      agent_env=list(FEWER_RETRIES))
                name = f"{runtime}-{case}"
                (out / f"{name}.txt").write_text(ran.output)
                index[name] = {"exit_status": ran.exit_status, "seconds": round(ran.seconds, 1),
                               "requests": len(server.seen(marker))}  # fmt: skip
                print(name, index[name], flush=True)
    (out / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    server.stop()
    return index


if __name__ == "__main__":
    capture(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
