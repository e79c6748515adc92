"""A LangSmith stand-in on the standard library: it keeps the runs the SDK sends, for tests."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Collector", "running_collector"]


class Collector:
    """Serve the LangSmith endpoints the SDK traces to, on 127.0.0.1, and keep the runs by id.

    It answers `GET /info`, `POST /runs`, `PATCH /runs/{id}`, `POST /runs/batch` and
    `POST /runs/multipart` (uncompressed: `/info` offers no compression). A run's later parts
    (a PATCH, a `patch.<id>` part) are merged over what came first, as LangSmith does.

    Attributes:
        requests: `(method, path)` of every request received, in arrival order.
        runs: Every run received, by id: the merged fields (`name`, `parent_run_id`, `tags`,
            `extra`, `inputs`, `outputs`, `error`, ...).
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to pass as the client's `api_url`."""
        if self._httpd is None:
            raise RuntimeError("the collector is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Collector:
        """Bind an ephemeral port on 127.0.0.1 and serve from a daemon thread."""
        if self._httpd is None:
            self._httpd = _Server(self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="langsmith-collector", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the serving thread; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    # -- what the handler records ---------------------------------------------------------------

    def record(self, method: str, path: str) -> None:
        """Note a request."""
        with self._lock:
            self.requests.append((method, path))

    def merge(self, run_id: str, fields: dict[str, Any]) -> None:
        """Merge `fields` into the run `run_id` (later values win, as a PATCH does)."""
        with self._lock:
            run = self.runs.setdefault(run_id, {"id": run_id})
            run.update({key: value for key, value in fields.items() if value is not None})

    # -- reading the trace ----------------------------------------------------------------------

    def roots(self) -> list[dict[str, Any]]:
        """Return the runs without a parent, in start order."""
        with self._lock:
            runs = list(self.runs.values())
        return sorted(
            (run for run in runs if not run.get("parent_run_id")),
            key=lambda run: str(run.get("dotted_order") or run.get("start_time") or ""),
        )

    def children(self, run_id: str) -> list[dict[str, Any]]:
        """Return the runs whose parent is `run_id`, in start order."""
        with self._lock:
            runs = list(self.runs.values())
        return sorted(
            (run for run in runs if str(run.get("parent_run_id")) == str(run_id)),
            key=lambda run: str(run.get("dotted_order") or run.get("start_time") or ""),
        )

    def tree(self, run_id: str) -> dict[str, Any]:
        """Return the run `run_id` with its descendants nested under `"child_runs"`."""
        with self._lock:
            run = dict(self.runs[str(run_id)])
        run["child_runs"] = [self.tree(child["id"]) for child in self.children(str(run_id))]
        return run

    def clear(self) -> None:
        """Forget every run and request received so far."""
        with self._lock:
            self.runs.clear()
            self.requests.clear()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def running_collector() -> Iterator[Collector]:
    """Start a `Collector`, and always stop it."""
    collector = Collector().start()
    try:
        yield collector
    finally:
        collector.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: Collector) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


def _run_id(run: dict[str, Any]) -> str:
    return str(run["id"])


class _Handler(BaseHTTPRequestHandler):
    """Answer the LangSmith tracing endpoints for the owning collector.

    HTTP/1.0 (the default): every connection closes after its reply, so stopping the collector
    never waits on a client's idle keep-alive connection.
    """

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""

    def _body(self) -> bytes:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return body

    def _reply(self, code: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.record("GET", self.path)
        if self.path.split("?")[0].rstrip("/").endswith("/info"):
            self._reply(200, {"version": "0.0.0-collector", "instance_flags": {}})
        else:
            self._reply(404, {"detail": "not found"})

    def do_POST(self) -> None:
        owner = self.server.owner
        owner.record("POST", self.path)
        path = self.path.split("?")[0].rstrip("/")
        body = self._body()
        if path.endswith("/runs"):
            run = json.loads(body)
            owner.merge(_run_id(run), run)
        elif path.endswith("/runs/batch"):
            batch = json.loads(body)
            for run in [*batch.get("post", []), *batch.get("patch", [])]:
                owner.merge(_run_id(run), run)
        elif path.endswith("/runs/multipart"):
            self._multipart(body)
        else:
            self._reply(404, {"detail": "not found"})
            return
        self._reply(202, {})

    def do_PATCH(self) -> None:
        owner = self.server.owner
        owner.record("PATCH", self.path)
        path = self.path.split("?")[0].rstrip("/")
        if "/runs/" not in path:
            self._reply(404, {"detail": "not found"})
            return
        owner.merge(path.rsplit("/", 1)[1], json.loads(self._body()))
        self._reply(202, {})

    def _multipart(self, body: bytes) -> None:
        """Merge each `post.<id>`, `patch.<id>` and `<op>.<id>.<field>` part into its run."""
        content_type = self.headers.get("Content-Type", "")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            operation, _, rest = name.partition(".")
            if operation not in ("post", "patch"):
                continue  # attachments and feedback: not kept
            run_id, _, field = rest.partition(".")
            value = json.loads(part.get_payload(decode=True) or b"null")
            self.server.owner.merge(run_id, {field: value} if field else value)
