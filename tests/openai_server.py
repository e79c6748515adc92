"""A scriptable OpenAI-compatible chat and embeddings server, on the standard library, for tests."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import socketserver
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from graph.prompts import DYNAMIC_EXAMPLES_HEADER

__all__ = [
    "Action",
    "Delay",
    "OpenAIServer",
    "Reply",
    "Request",
    "Reset",
    "Status",
    "bad_request",
    "context_length",
    "embedding_for",
    "forbidden",
    "rate_limited",
    "running_server",
    "server_error",
    "truncated",
    "truncated_stop",
    "unauthorized",
    "unknown_model",
]


# --------------------------------------------------------------------------------------------------
# Requests


@dataclass
class Request:
    """One chat completions or embeddings request, as the server received it.

    Attributes:
        model: The requested model.
        messages: The request's messages, as sent.
        text: The text of the last message with role "user" ("" if none).
        first_user_text: The text of the request that opened the conversation: its first message
            with role "user", not counting Crane's dynamic examples ("" if none).
        response_format: The request's `response_format`, or None.
        temperature: The request's `temperature`, or None if absent.
        headers: The request headers, with lower-cased names.
        body: The whole decoded request body.
        action: The name of what answered it: an action's name ("Reply", "Status(429)",
            "Reset", "Delay(0.5)->Reply"), or "unauthorized", "stream_rejected",
            "schema_rejected", "input_rejected".
        started_at: `time.monotonic()` when the request had been read.
        finished_at: `time.monotonic()` when it had been answered (0.0 until then).
        endpoint: "chat" or "embeddings".
        inputs: An embeddings request's texts, in order (empty for chat); its `text` and
            `first_user_text` are "" and its `messages` empty.
    """

    model: str
    messages: list[dict[str, Any]]
    text: str
    first_user_text: str
    response_format: dict[str, Any] | None
    temperature: Any
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict, repr=False)
    action: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    endpoint: str = "chat"
    inputs: list[str] = field(default_factory=list)


def _content_text(content: Any) -> str:
    """Return the text of a message's content, a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    return "" if content is None else str(content)


def _embedding_inputs(value: Any) -> list[str] | None:
    """Return an embeddings request's `input` as texts, or None unless it is text or texts.

    OpenAI also takes token arrays; this server answers text only.
    """
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def embedding_for(text: str, dim: int = 16) -> list[float]:
    """Return the vector the server answers for `text`: deterministic, in [-1, 1), not unit length.

    Each component comes from a byte of sha256 digests of the text, so equal texts get equal
    vectors and different texts nearly orthogonal ones. The vectors are deliberately not
    normalized, so a client that must normalize is caught if it does not.
    """
    values: list[float] = []
    block = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        values.extend(byte / 128.0 - 1.0 for byte in digest)
        block += 1
    return values[:dim]


def _opening_request(messages: list[dict[str, Any]]) -> str:
    """Return the conversation's request: its first user message that is not context.

    Crane sends the person's past requests as examples in a user message of their own before
    the request (it starts with `DYNAMIC_EXAMPLES_HEADER`); repairs come after the request.
    """
    users = [t for t in _user_texts(messages) if not t.startswith(DYNAMIC_EXAMPLES_HEADER)]
    return users[0] if users else ""


def _user_texts(messages: list[dict[str, Any]]) -> list[str]:
    """Return the texts of the messages with role "user", in order."""
    return [
        _content_text(message.get("content"))
        for message in messages
        if isinstance(message, dict) and message.get("role") == "user"
    ]


# --------------------------------------------------------------------------------------------------
# Actions


@dataclass
class Reply:
    """Answer 200 with a chat completion.

    The content is `content` if given, else `json.dumps(plan)` if `plan` is given, else the
    server's planner's plan for the request (`"{}"` without a planner). With `refusal`, the
    message carries the refusal and a null content.
    """

    plan: dict[str, Any] | None = None
    content: str | None = None
    finish_reason: str = "stop"
    refusal: str | None = None
    prompt_tokens: int = 100
    completion_tokens: int = 20


@dataclass
class Status:
    """Answer `code` with OpenAI's error body and extra `headers` (e.g. `Retry-After`).

    `code_name` is the error's `code` field; `type_name` its `type` field (by default derived
    from the status, as OpenAI does).
    """

    code: int
    message: str = "Scripted error."
    code_name: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    type_name: str | None = None
    param: str | None = None


@dataclass
class Reset:
    """Drop the connection without a response, with a TCP reset (the client sees a connection error)."""


@dataclass
class Delay:
    """Sleep `seconds`, then perform `then` (by default a plain `Reply()`).

    Use it to answer slower than the client's timeout; the server survives the client hanging up.
    """

    seconds: float
    then: Action | None = None


@dataclass
class Trickle:
    """Send the 200 headers at once, then the reply's body `chunk` bytes every `every_s` seconds.

    Each read finishes well within a per-read timeout, so only a deadline on the whole call
    stops a client from waiting for the full trickle.
    """

    every_s: float = 0.2
    chunk: int = 20
    reply: Reply = field(default_factory=Reply)


Action = Reply | Status | Reset | Delay | Trickle


def _action_name(action: Action) -> str:
    """Return a short name for `action`, kept in `Request.action`."""
    if isinstance(action, Status):
        return f"Status({action.code})"
    if isinstance(action, Delay):
        return f"Delay({action.seconds:g})->{_action_name(action.then or Reply())}"
    return type(action).__name__


def _default_type(code: int) -> str:
    """Return OpenAI's error `type` for an HTTP status."""
    if code == 429:
        return "requests"
    if code >= 500:
        return "server_error"
    if code == 403:
        return "permission_error"
    return "invalid_request_error"


def rate_limited(retry_after: str | None = "1", *, retry_after_ms: str | None = None) -> Status:
    """Return a 429 "rate limit reached", with `Retry-After` and/or `retry-after-ms` headers."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    return Status(
        429,
        "Rate limit reached for requests. Please try again later.",
        "rate_limit_exceeded",
        headers,
    )


def server_error(code: int = 500) -> Status:
    """Return a 5xx "server had an error" (500 by default; 502, 503 also make sense)."""
    return Status(
        code, "The server had an error while processing your request. Sorry about that!", None
    )


def unauthorized() -> Status:
    """Return a 401 "incorrect API key"."""
    return Status(401, "Incorrect API key provided.", "invalid_api_key")


def forbidden() -> Status:
    """Return a 403 "not allowed"."""
    return Status(403, "You are not allowed to sample from this model.", None)


def unknown_model(model: str = "m") -> Status:
    """Return a 404 "model does not exist"."""
    return Status(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "model_not_found",
    )


def bad_request(message: str = "Invalid request.") -> Status:
    """Return a plain 400."""
    return Status(400, message, None)


def context_length() -> Status:
    """Return a 400 "maximum context length exceeded"."""
    return Status(
        400,
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 200000 tokens. Please reduce the length of the messages.",
        "context_length_exceeded",
        param="messages",
    )


def truncated(plan: dict[str, Any]) -> Reply:
    """Return a reply with `plan`'s JSON cut in half and finish_reason "length"."""
    text = json.dumps(plan)
    return Reply(content=text[: len(text) // 2], finish_reason="length")


def truncated_stop(plan: dict[str, Any]) -> Reply:
    """Return a reply with `plan`'s JSON cut in half but finish_reason "stop" (a buggy gateway)."""
    text = json.dumps(plan)
    return Reply(content=text[: len(text) // 2], finish_reason="stop")


# --------------------------------------------------------------------------------------------------
# The server


class _Rule:
    """A scripted rule: matching requests consume `actions`, one each."""

    def __init__(self, match: str | Callable[[Request], bool], actions: list[Action]) -> None:
        self.match = match
        self.actions = actions

    def matches(self, request: Request) -> bool:
        if isinstance(self.match, str):
            if request.endpoint == "embeddings":
                return any(self.match in text for text in request.inputs)
            return self.match in request.first_user_text
        return bool(self.match(request))


class _Drop(Exception):
    """Raised inside a handler to drop its connection without answering."""


class _HTTPServer(ThreadingHTTPServer):
    """A `ThreadingHTTPServer` that knows its `OpenAIServer` and keeps quiet about errors."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, owner: OpenAIServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        """Bind without `HTTPServer`'s reverse DNS lookup of the host."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Swallow handler errors: a test server must not write to stderr."""


class _Handler(BaseHTTPRequestHandler):
    """Answer `/v1/chat/completions`, `/v1/embeddings` and `/v1/models` for the owning server."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # or keep-alive replies wait on delayed ACKs (~40 ms each)
    server_version = "openai-test-server/1.0"
    sys_version = ""
    server: _HTTPServer

    # ---- plumbing

    def setup(self) -> None:
        super().setup()
        self.server.owner._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._connection_closed(self.connection)

    def handle(self) -> None:
        try:
            super().handle()
        except (_Drop, OSError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""

    def _send_json(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Send `body` as a JSON response; a client that hung up is not an error."""
        payload = json.dumps(body).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True

    def _trickle(self, action: Trickle, body: Any) -> None:
        """Send `body` slowly, a chunk at a time; stop when the client hangs up or we stop."""
        payload = json.dumps(body).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.flush()
            for start in range(0, len(payload), action.chunk):
                if self.server.owner._wait(action.every_s):
                    break
                self.wfile.write(payload[start : start + action.chunk])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            pass
        self.close_connection = True

    def _send_error_body(
        self,
        code: int,
        message: str,
        *,
        code_name: str | None = None,
        type_name: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send an OpenAI-style error."""
        error = {
            "message": message,
            "type": type_name or _default_type(code),
            "param": param,
            "code": code_name,
        }
        self._send_json(code, {"error": error}, headers)

    def _read_body(self) -> bytes:
        """Read the request body (by Content-Length, or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise _Drop
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise _Drop
        return body

    def _authorized(self) -> bool:
        expected = f"Bearer {self.server.owner.api_key}"
        return self.headers.get("Authorization", "") == expected

    def _reset(self) -> None:
        """Abort the connection with a TCP reset and stop handling it."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.rfile.close()  # the makefile holds a reference: the socket closes with the last one
        self.connection.close()
        raise _Drop

    # ---- routes

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if not self._authorized():
            self._send_error_body(401, "Incorrect API key provided.", code_name="invalid_api_key")
        elif path in ("/v1/models", "/models"):
            models = self.server.owner.models_seen()
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in models]
            self._send_json(200, {"object": "list", "data": data})
        elif path == "/stats":
            self._send_json(200, self.server.owner.stats())
        else:
            self._send_error_body(404, f"Unknown request URL: GET {self.path}.", code_name=None)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = self._read_body()
        if path in ("/v1/chat/completions", "/chat/completions"):
            answer = self._chat_completions
        elif path in ("/v1/embeddings", "/embeddings"):
            answer = self._embeddings
        else:
            self._send_error_body(404, f"Unknown request URL: POST {self.path}.")
            return
        owner = self.server.owner
        owner._enter()
        try:
            answer(raw)
        finally:
            owner._leave()

    def _json_body(self, raw: bytes) -> tuple[dict[str, Any] | None, bool]:
        """Return the request's JSON object and whether it is authorized; None: answered already.

        A body that is not a JSON object is refused as OpenAI does: 401 before 400.
        """
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        authorized = self._authorized()
        if not authorized and not isinstance(body, dict):
            self._send_error_body(401, "Incorrect API key provided.", code_name="invalid_api_key")
            return None, authorized
        if not isinstance(body, dict):
            self._send_error_body(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly.)",
            )
            return None, authorized
        return body, authorized

    def _chat_completions(self, raw: bytes) -> None:
        owner = self.server.owner
        body, authorized = self._json_body(raw)
        if body is None:
            return
        request = owner._record(body, {k.lower(): v for k, v in self.headers.items()})
        owner._wait(owner.latency_s)
        action: Action | None = None
        if not authorized:
            request.action = "unauthorized"
            self._send_error_body(401, "Incorrect API key provided.", code_name="invalid_api_key")
        elif body.get("stream"):
            request.action = "stream_rejected"
            self._send_error_body(
                400,
                "This test server does not stream: send the request with stream=false.",
                param="stream",
            )
        elif problems := owner._schema_problems(request):
            request.action = "schema_rejected"
            name = (request.response_format or {}).get("json_schema", {}).get("name", "")
            self._send_error_body(
                400,
                f"Invalid schema for response_format '{name}': " + "; ".join(problems),
                code_name="invalid_json_schema",
                param="response_format",
            )
        else:
            action = owner._choose(request)
            request.action = _action_name(action)
        self._finish(action, request)

    def _embeddings(self, raw: bytes) -> None:
        owner = self.server.owner
        body, authorized = self._json_body(raw)
        if body is None:
            return
        inputs = _embedding_inputs(body.get("input"))
        request = owner._record(
            body, {k.lower(): v for k, v in self.headers.items()}, inputs=inputs or []
        )
        action: Action | None = None
        if not authorized:
            request.action = "unauthorized"
            self._send_error_body(401, "Incorrect API key provided.", code_name="invalid_api_key")
        elif inputs is None:
            request.action = "input_rejected"
            self._send_error_body(
                400,
                "'input' must be a non-empty string or list of strings (this test server takes "
                "no token arrays).",
                param="input",
            )
        else:
            action = owner._choose(request)
            request.action = _action_name(action)
        self._finish(action, request)

    def _finish(self, action: Action | None, request: Request) -> None:
        """Perform the chosen action, if the request was not refused already; stamp its end."""
        try:
            if action is not None:
                self._perform(action, request)
        finally:
            request.finished_at = time.monotonic()

    def _perform(self, action: Action, request: Request) -> None:
        owner = self.server.owner
        if isinstance(action, Delay):
            if owner._wait(action.seconds):
                self._reset()  # the server is stopping
            self._perform(action.then or Reply(), request)
        elif isinstance(action, Reset):
            self._reset()
        elif isinstance(action, Trickle):
            self._trickle(action, owner._answer(action.reply, request))
        elif isinstance(action, Status):
            self._send_error_body(
                action.code,
                action.message,
                code_name=action.code_name,
                type_name=action.type_name,
                param=action.param,
                headers=action.headers,
            )
        else:
            self._send_json(200, owner._answer(action, request))


class OpenAIServer:
    """Serve OpenAI's chat completions and embeddings APIs on 127.0.0.1, answering as scripted.

    Embeddings requests (`POST /v1/embeddings`) have their own record, rules and default action
    (`embedding_requests`, `script_embeddings`, `default_embeddings`), so scripting one API never
    consumes the other's rules. A `Reply` answers vectors from `embedding_for` (of `dimensions`
    from the request, else `embedding_dim`), as floats or base64 as the request's
    `encoding_format` asks; `Status`, `Reset`, `Delay` and `Trickle` behave as for chat.

    Args:
        api_key: The key clients must send as `Authorization: Bearer <api_key>`.
        planner: Map a request's `first_user_text` to the plan (a JSON object) a default reply
            returns; None, or a None plan, replies `"{}"`.
        latency_s: Sleep this long in every chat completions request before answering.
        schema_check: Called with the schema of a strict `json_schema` response format; any
            problem it returns answers 400 (`invalid_json_schema`), as OpenAI does.
        embedding_dim: Length of the vectors embeddings requests get by default.

    Attributes:
        requests: Every chat completions request received, in arrival order.
        embedding_requests: Every embeddings request received, in arrival order.
        max_in_flight: The most requests (chat completions or embeddings) handled at the same
            time.
        connections: How many connections were accepted (keep-alive reuses them).
    """

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        planner: Callable[[str], dict[str, Any] | None] | None = None,
        latency_s: float = 0.0,
        schema_check: Callable[[dict[str, Any]], list[str]] | None = None,
        embedding_dim: int = 16,
    ) -> None:
        self.api_key = api_key
        self.planner = planner
        self.latency_s = latency_s
        self.schema_check = schema_check
        self.embedding_dim = embedding_dim
        self.requests: list[Request] = []
        self.embedding_requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0
        self._rules: list[_Rule] = []
        self._default: Action = Reply()
        self._embedding_rules: list[_Rule] = []
        self._embedding_default: Action = Reply()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._open: dict[socket.socket, threading.Thread] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> OpenAIServer:
        """Bind an ephemeral port on 127.0.0.1 and serve from a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"openai-test-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and wait for the threads; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            open_connections = list(self._open.items())
        for conn, _ in open_connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, handler in open_connections:
            handler.join(timeout=5)
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """Return the port the server listens on."""
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """Return the API's base URL, `http://127.0.0.1:<port>/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- scripting

    def script(self, match: str | Callable[[Request], bool], *actions: Action) -> None:
        """Answer the next requests that match with `actions`, one each, in order.

        Args:
            match: A string the request's `first_user_text` contains, or a predicate on the
                `Request`.
            *actions: The actions, consumed one per matching request; once they are used up the
                rule no longer applies. Rules are tried in the order they were added.
        """
        with self._lock:
            self._rules.append(_Rule(match, list(actions)))

    def default(self, action: Action) -> None:
        """Answer requests no rule matches with `action` (initially `Reply()`)."""
        with self._lock:
            self._default = action

    def script_embeddings(self, match: str | Callable[[Request], bool], *actions: Action) -> None:
        """Answer the next embeddings requests that match with `actions`, one each, in order.

        Args:
            match: A string one of the request's `inputs` contains, or a predicate on the
                `Request`.
            *actions: The actions, consumed one per matching request, as in `script`.
        """
        with self._lock:
            self._embedding_rules.append(_Rule(match, list(actions)))

    def default_embeddings(self, action: Action) -> None:
        """Answer embeddings requests no rule matches with `action` (initially `Reply()`)."""
        with self._lock:
            self._embedding_default = action

    def reset(self) -> None:
        """Forget the rules, the default actions, the recorded requests and the counters."""
        with self._lock:
            self._rules.clear()
            self._default = Reply()
            self._embedding_rules.clear()
            self._embedding_default = Reply()
            self.requests.clear()
            self.embedding_requests.clear()
            self.max_in_flight = self.in_flight
            self.connections = 0

    def stats(self) -> dict[str, Any]:
        """Return the counters (also served as `GET /stats`, for a server in another process).

        `chat_ms` lists each answered chat request's time in the server, in arrival order.
        """
        with self._lock:
            return {
                "chat_requests": len(self.requests),
                "embedding_requests": len(self.embedding_requests),
                "max_in_flight": self.max_in_flight,
                "connections": self.connections,
                "chat_ms": [
                    (r.finished_at - r.started_at) * 1000 for r in self.requests if r.finished_at
                ],
            }

    def models_seen(self) -> list[str]:
        """Return the models requested so far, in first-seen order."""
        with self._lock:
            return list(dict.fromkeys(r.model for r in self.requests if r.model))

    @property
    def actions(self) -> list[str]:
        """Return the names of the actions that answered the requests, in arrival order."""
        with self._lock:
            return [r.action for r in self.requests]

    # ---- used by the handlers

    def _connection_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._open[conn] = threading.current_thread()
            self.connections += 1

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.pop(conn, None)

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _wait(self, seconds: float) -> bool:
        """Sleep `seconds`, or less if the server stops; return whether it is stopping."""
        if seconds > 0:
            return self._stopping.wait(seconds)
        return self._stopping.is_set()

    def _record(
        self, body: dict[str, Any], headers: dict[str, str], *, inputs: list[str] | None = None
    ) -> Request:
        """Record a chat request, or an embeddings request when `inputs` is given."""
        if inputs is not None:
            request = Request(
                model=str(body.get("model") or ""),
                messages=[],
                text="",
                first_user_text="",
                response_format=None,
                temperature=None,
                headers=headers,
                body=body,
                started_at=time.monotonic(),
                endpoint="embeddings",
                inputs=inputs,
            )
            with self._lock:
                self.embedding_requests.append(request)
            return request
        raw_messages = body.get("messages")
        messages = (
            [m for m in raw_messages if isinstance(m, dict)]
            if isinstance(raw_messages, list)
            else []
        )
        users = _user_texts(messages)
        response_format = body.get("response_format")
        request = Request(
            model=str(body.get("model") or ""),
            messages=messages,
            text=users[-1] if users else "",
            first_user_text=_opening_request(messages),
            response_format=response_format if isinstance(response_format, dict) else None,
            temperature=body.get("temperature"),
            headers=headers,
            body=body,
            started_at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(request)
        return request

    def _schema_problems(self, request: Request) -> list[str]:
        response_format = request.response_format or {}
        json_schema = response_format.get("json_schema")
        if (
            self.schema_check is None
            or response_format.get("type") != "json_schema"
            or not isinstance(json_schema, dict)
            or json_schema.get("strict") is not True
        ):
            return []
        return list(self.schema_check(json_schema.get("schema") or {}))

    def _choose(self, request: Request) -> Action:
        embeddings = request.endpoint == "embeddings"
        with self._lock:
            for rule in self._embedding_rules if embeddings else self._rules:
                if rule.actions and rule.matches(request):
                    return rule.actions.pop(0)
            return self._embedding_default if embeddings else self._default

    def _answer(self, reply: Reply, request: Request) -> dict[str, Any]:
        """Return the 200 body answering `request` with `reply`."""
        if request.endpoint == "embeddings":
            return self._embedding_response(request)
        return self._completion(reply, request)

    def _embedding_response(self, request: Request) -> dict[str, Any]:
        dimensions = request.body.get("dimensions")
        dim = dimensions if isinstance(dimensions, int) and dimensions > 0 else self.embedding_dim
        base64_wanted = request.body.get("encoding_format") == "base64"
        data: list[dict[str, Any]] = []
        for index, text in enumerate(request.inputs):
            vector = embedding_for(text, dim)
            embedding: Any = vector
            if base64_wanted:
                embedding = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(max(1, len(text.split())) for text in request.inputs)
        return {
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _completion(self, reply: Reply, request: Request) -> dict[str, Any]:
        if reply.refusal is not None:
            content: str | None = None
        elif reply.content is not None:
            content = reply.content
        elif reply.plan is not None:
            content = json.dumps(reply.plan)
        else:
            plan = self.planner(request.first_user_text) if self.planner is not None else None
            content = json.dumps(plan if plan is not None else {})
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "refusal": reply.refusal,
            "annotations": [],
        }
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            },
            "system_fingerprint": "fp_test",
        }


@contextmanager
def running_server(**kwargs: Any) -> Iterator[OpenAIServer]:
    """Start an `OpenAIServer` built with `kwargs`, and always stop it."""
    server = OpenAIServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()
