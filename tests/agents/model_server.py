"""A scripted model server on loopback, for the real agent CLIs: enough of the Anthropic Messages
API, the OpenAI Responses API and the Gemini API (`streamGenerateContent?alt=sse`), each
streaming, to play scripted turns, and every request logged so a test can see what a CLI sent.

A script is a list of turns, found by a marker word that the job's prompt holds (so many jobs,
and a follow-up with another marker, share one server). Which turn a request gets is read from
the conversation it sends: the number of model turns after the newest user message with a
marker. Faults (a status, a stall) are served `times` times, then passed over, so a retry by
the CLI or by Cairn moves on to the next turn."""

from __future__ import annotations

import http.server
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MARKER = re.compile(r"\bSCRIPT-[A-Za-z0-9_-]+")
USAGE = (1200, 200, 40)  # tokens in (cached among them), cached, out: each turn's, unless given


@dataclass(frozen=True)
class Turn:
    """One scripted answer. kind: `write` (the CLI's file-writing tool; codex has none and
    writes through its shell tool), `command` (its shell tool), `text` (a final answer),
    `status` (an HTTP error), `stall` (no byte for `seconds`; mid-turn when `partial`)."""

    kind: str
    path: str = ""
    content: str = ""
    command: str = ""
    text: str = ""
    status: int = 0
    retry_after: float | None = None
    seconds: float = 0.0
    partial: bool = False
    times: int = 1  # a fault: how often it is served before it is passed over
    usage: tuple[int, int, int] = USAGE

    @property
    def fault(self) -> bool:
        return self.kind in ("status", "stall")


def write(path: str, content: str, **kw: Any) -> Turn:
    return Turn("write", path=path, content=content, **kw)


def command(cmd: str, **kw: Any) -> Turn:
    return Turn("command", command=cmd, **kw)


def text(message: str, **kw: Any) -> Turn:
    return Turn("text", text=message, **kw)


def status(code: int, *, retry_after: float | None = None, times: int = 1) -> Turn:
    return Turn("status", status=code, retry_after=retry_after, times=times)


def stall(seconds: float, *, partial: bool = False, times: int = 1) -> Turn:
    return Turn("stall", seconds=seconds, partial=partial, times=times)


@dataclass
class Request:
    api: str  # anthropic, openai, gemini
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    marker: str | None = None
    served: str = ""  # what it got: a turn's kind, or "side" for a request outside any script

    @property
    def texts(self) -> str:
        """Every text of the conversation as sent, joined: for "did the model see X"."""
        return json.dumps(self.body)


@dataclass
class ModelServer:
    scripts: dict[str, list[Turn]] = field(default_factory=dict)
    key: str | None = None  # when set, a request without it (x-api-key, bearer, x-goog) is 401
    requests: list[Request] = field(default_factory=list)
    port_wanted: int = 0  # 0: a free one
    # The script of a conversation that names no marker (a person's own prompt, as in the
    # README's walkthrough); None: such a request is a side request, answered "ok".
    default: list[Turn] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._served: dict[tuple[str, int], int] = {}
        self._ids = itertools.count(1)
        address = ("127.0.0.1", self.port_wanted)
        self._httpd = http.server.ThreadingHTTPServer(address, _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> ModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, marker: str, turns: list[Turn]) -> str:
        """Register `turns` under `marker` (SCRIPT-...); returns the marker for the prompt."""
        assert MARKER.fullmatch(marker), marker
        with self._lock:
            self.scripts[marker] = turns
        return marker

    def seen(self, marker: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.marker == marker]

    # ---- choosing a turn ------------------------------------------------------------------

    def choose(self, request: Request, conversation: list[tuple[str, str]]) -> Turn | None:
        """The turn for a request: conversation is (role, text) in order, role user or model."""
        marker, after = None, 0
        for i, (role, said) in enumerate(conversation):
            if role == "user" and (found := MARKER.findall(said)):
                marker, after = found[-1], i
        # An agent's turn offers tools; a side request (a title, a classifier) does not.
        if marker is None and self.default is not None and request.body.get("tools"):
            marker, after = "SCRIPT-default", 0
            self.scripts.setdefault(marker, self.default)
        if marker is None or marker not in self.scripts:
            return None
        request.marker = marker
        answered = sum(1 for role, _ in conversation[after + 1 :] if role == "model")
        with self._lock:
            for position, turn in enumerate(self.scripts[marker]):
                if turn.fault:
                    key = (marker, position)
                    if self._served.get(key, 0) < turn.times:
                        self._served[key] = self._served.get(key, 0) + 1
                        return turn
                    continue
                if answered == 0:
                    return turn
                answered -= 1
        return text("Done.")

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"


def _handler(server: ModelServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            request = Request("", "GET", self.path, dict(self.headers.items()), {}, time.time())
            with server._lock:
                server.requests.append(request)
            if self.path.split("?")[0].endswith("/models"):  # codex's model list
                self._json(200, {"object": "list", "data": [], "models": []})
                return
            self._json(404, {"error": {"message": f"no such route: {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            path = self.path
            api = ("anthropic" if "/messages" in path else "openai" if "/responses" in path
                   else "gemini" if ":streamGenerateContent" in path or ":generateContent" in path
                   else "")  # fmt: skip
            request = Request(api, "POST", path, dict(self.headers.items()), body, time.time())
            with server._lock:
                server.requests.append(request)
            if not api:
                self._json(404, {"error": {"message": f"no such route: {path}"}})
                return
            if server.key is not None and server.key not in _credentials(self.headers):
                request.served = "unauthorized"
                self._error(api, 401, "invalid api key (scripted server)")
                return
            turn = server.choose(request, _conversation(api, body))
            if turn is None:  # a side request (a title, a classifier): a short answer
                request.served = "side"
                turn = text("ok", usage=(1, 0, 1))
            else:
                request.served = turn.kind
            if turn.kind == "status":
                self._error(api, turn.status, f"scripted {turn.status}", turn.retry_after)
                return
            if turn.kind == "stall" and not turn.partial:
                time.sleep(turn.seconds)
                self._error(api, 504, "scripted stall ended")
                return
            workdir = _workdir(api, body)
            if api == "gemini":  # the model is in the path: models/<model>:streamGenerateContent
                body["_model"] = path.split("/models/", 1)[-1].split(":", 1)[0]
            streaming = (api == "gemini" and "stream" in path) or bool(body.get("stream"))
            events = _EVENTS[api](server, turn, workdir, body)
            if not streaming:
                self._json(200, _whole(api, events))
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for i, (name, data) in enumerate(events):
                    head = f"event: {name}\n" if name else ""
                    self.wfile.write(f"{head}data: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()
                    if turn.kind == "stall" and i == 0:
                        time.sleep(turn.seconds)
                        return
            except (BrokenPipeError, ConnectionResetError):
                return

        def _json(self, code: int, document: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(document).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, api: str, code: int, message: str, retry_after: float | None = None
                   ) -> None:  # fmt: skip
            headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
            if api == "anthropic":
                kind = {401: "authentication_error", 429: "rate_limit_error",
                        529: "overloaded_error"}.get(code, "api_error")  # fmt: skip
                document: Any = {"type": "error", "error": {"type": kind, "message": message}}
            elif api == "openai":
                names = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
                kind = names.get(code, "server_error")
                document = {"error": {"message": message, "type": kind, "code": kind}}
            else:
                state = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                         429: "RESOURCE_EXHAUSTED"}.get(code, "INTERNAL")  # fmt: skip
                error: dict[str, Any] = {"code": code, "message": message, "status": state}
                if retry_after is not None:
                    error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                         "retryDelay": f"{retry_after:g}s"}]  # fmt: skip
                document = {"error": error}
            self._json(code, document, headers)

    return Handler


def _credentials(headers: Any) -> str:
    return " ".join(str(headers.get(name) or "") for name in
                    ("x-api-key", "authorization", "x-goog-api-key"))  # fmt: skip


# ---- reading a request -------------------------------------------------------------------


def _conversation(api: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    said: list[tuple[str, str]] = []
    if api == "anthropic":
        for message in body.get("messages") or []:
            speaker = "model" if message.get("role") == "assistant" else "user"
            said.append((speaker, _texts(message.get("content"))))
    elif api == "openai":
        items = body.get("input") or []
        for item in items if isinstance(items, list) else [{"role": "user", "content": items}]:
            kind, role = item.get("type", "message"), item.get("role")
            if kind == "message" and role == "user":
                said.append(("user", _texts(item.get("content"))))
            elif kind in ("function_call", "custom_tool_call") or (
                kind == "message" and role == "assistant"
            ):
                # A turn's output items are several; a model turn is counted once.
                if not said or said[-1] != ("model", "turn"):
                    said.append(("model", "turn"))
            elif kind in ("function_call_output", "custom_tool_call_output"):
                said.append(("tool", ""))
    else:
        for content in body.get("contents") or []:
            parts = content.get("parts") or []
            if content.get("role") == "model":
                said.append(("model", _texts(parts)))
            elif any("functionResponse" in p for p in parts):
                said.append(("tool", ""))
            else:
                said.append(("user", _texts(parts)))
    return said


def _texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_texts(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text") or "") + _texts(content.get("content") or "")
    return ""


def _workdir(api: str, body: dict[str, Any]) -> str:
    """The CLI's working directory as its prompt states it (claude and gemini want absolute
    paths for their file tools)."""
    sent = json.dumps(body)
    found = re.search(r"Primary working directory: ([^\s\\]+)", sent) or re.search(
        r"Workspace Directories:\*\*\\n\s*- ([^\s\\]+)", sent
    )
    return found.group(1) if found else ""


# ---- each API's answer, as (event name, data) -------------------------------------------


def _anthropic(server: ModelServer, turn: Turn, workdir: str, body: dict[str, Any]
               ) -> list[tuple[str, Any]]:  # fmt: skip
    tokens_in, cached, tokens_out = turn.usage
    usage = {"input_tokens": tokens_in - cached, "cache_read_input_tokens": cached,
             "cache_creation_input_tokens": 0, "output_tokens": 1}  # fmt: skip
    message = {"id": server.next_id("msg"), "type": "message", "role": "assistant",
               "model": body.get("model", "claude"), "content": [], "stop_reason": None,
               "stop_sequence": None, "usage": usage}  # fmt: skip
    events: list[tuple[str, Any]] = [("message_start", {"type": "message_start",
                                                        "message": message})]  # fmt: skip
    if turn.kind in ("write", "command"):
        if turn.kind == "write":
            name, args = "Write", {"file_path": f"{workdir}/{turn.path}", "content": turn.content}
        else:
            name, args = "Bash", {"command": turn.command, "description": "Run a command"}
        block = {"type": "tool_use", "id": server.next_id("toolu"), "name": name, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(args)}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": turn.text or "Done."}
        stop = "end_turn"
    events += [
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": block}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": stop, "stop_sequence": None},
                           "usage": {"output_tokens": tokens_out}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return events


def _openai(server: ModelServer, turn: Turn, workdir: str, body: dict[str, Any]
            ) -> list[tuple[str, Any]]:  # fmt: skip
    tokens_in, cached, tokens_out = turn.usage
    response_id = server.next_id("resp")
    created = {"id": response_id, "object": "response", "status": "in_progress",
               "model": body.get("model", "gpt"), "output": []}  # fmt: skip
    events: list[tuple[str, Any]] = [("response.created", {"type": "response.created",
                                                           "response": created})]  # fmt: skip
    if turn.kind in ("write", "command"):
        cmd = turn.command if turn.kind == "command" else _shell_write(turn.path, turn.content)
        item: dict[str, Any] = {
            "type": "function_call", "id": server.next_id("fc"), "call_id": server.next_id("call"),
            "name": "exec_command", "arguments": json.dumps({"cmd": cmd}), "status": "completed",
        }  # fmt: skip
    else:
        said = turn.text or "Done."
        item = {"type": "message", "id": server.next_id("msg"), "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": said, "annotations": []}]}  # fmt: skip
        added = {**item, "status": "in_progress", "content": []}
        events.append(("response.output_item.added", {
            "type": "response.output_item.added", "output_index": 0, "item": added}))
        events.append(("response.output_text.delta", {
            "type": "response.output_text.delta", "item_id": item["id"], "output_index": 0,
            "content_index": 0, "delta": said}))  # fmt: skip
    usage = {"input_tokens": tokens_in, "input_tokens_details": {"cached_tokens": cached},
             "output_tokens": tokens_out, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": tokens_in + tokens_out}  # fmt: skip
    completed = {**created, "status": "completed", "output": [item], "usage": usage}
    events += [
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0,
                                       "item": item}),
        ("response.completed", {"type": "response.completed", "response": completed}),
    ]  # fmt: skip
    return events


def _gemini(server: ModelServer, turn: Turn, workdir: str, body: dict[str, Any]
            ) -> list[tuple[str, Any]]:  # fmt: skip
    tokens_in, cached, tokens_out = turn.usage
    if turn.kind == "write":
        part: dict[str, Any] = {"functionCall": {"name": "write_file", "args": {
            "file_path": f"{workdir}/{turn.path}" if workdir else turn.path,
            "content": turn.content}}}  # fmt: skip
    elif turn.kind == "command":
        part = {"functionCall": {"name": "run_shell_command",
                                 "args": {"command": turn.command}}}  # fmt: skip
    else:
        part = {"text": turn.text or "Done."}
    usage = {"promptTokenCount": tokens_in, "cachedContentTokenCount": cached,
             "candidatesTokenCount": tokens_out, "totalTokenCount": tokens_in + tokens_out}
    chunk = {"candidates": [{"content": {"role": "model", "parts": [part]},
                             "finishReason": "STOP", "index": 0}],
             "usageMetadata": usage, "modelVersion": body.get("_model", "gemini"),
             "responseId": server.next_id("gem")}  # fmt: skip
    return [("", chunk)]


_EVENTS = {"anthropic": _anthropic, "openai": _openai, "gemini": _gemini}


def _whole(api: str, events: list[tuple[str, Any]]) -> Any:
    """A streamed answer as one document, for a request that did not ask to stream."""
    if api == "gemini":
        return events[-1][1]
    if api == "openai":
        return events[-1][1]["response"]
    message = dict(events[0][1]["message"])
    start = next(d for n, d in events if n == "content_block_start")["content_block"]
    delta = next(d for n, d in events if n == "content_block_delta")["delta"]
    block = dict(start)
    if block["type"] == "text":
        block["text"] = delta["text"]
    else:
        block["input"] = json.loads(delta["partial_json"])
    final = next(d for n, d in events if n == "message_delta")
    message.update(content=[block], stop_reason=final["delta"]["stop_reason"])
    message["usage"] = {**message["usage"], **final["usage"]}
    return message


def _shell_write(path: str, content: str) -> str:
    quoted = content.replace("'", "'\\''")
    return f"printf '%s' '{quoted}' > {path}"
