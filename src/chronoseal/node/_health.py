"""What an orchestrator (Kubernetes, systemd, ``chronoseal run``) needs from an agent: a
liveness and a readiness probe, and log lines a machine can read.

``/healthz`` answers 200 while the agent's loop keeps beating (it polled the chain within
``stale_after`` seconds), 503 once it stopped: restart me. ``/readyz`` answers 200 only while
the agent is ready to do its job (attached to the chain, its last poll succeeded) and says
why not otherwise: do not route to me yet. Neither endpoint reveals anything confidential:
the component, the task id and a reason id.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any, Protocol

from rich.console import Console
from rich.markup import escape


class Log(Protocol):
    """How agents report: a message and, for machines, a stable event id."""

    def __call__(self, message: str, *, event: str = "agent.info") -> None: ...


class AgentLog:
    """Human lines (``  • message``) or JSON lines ``{time, component, task, event, message}``."""

    def __init__(
        self,
        component: str,
        *,
        task: str | None = None,
        json_lines: bool = False,
        stream: IO[str] | None = None,
    ) -> None:
        self.component = component
        self.task = task
        self.json_lines = json_lines
        self._stream = stream
        self._console = Console(file=stream) if stream is not None else Console()
        self._lock = threading.Lock()

    def __call__(self, message: str, *, event: str = "agent.info") -> None:
        with self._lock:
            if self.json_lines:
                line = {
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "component": self.component,
                    "task": self.task,
                    "event": event,
                    "message": message,
                }
                out = self._stream or sys.stdout
                out.write(json.dumps(line) + "\n")
                out.flush()
            else:  # ids in brackets are not markup
                self._console.print(f"  [dim]•[/] {escape(message)}", highlight=False)


class Health:
    """Liveness and readiness of one agent, optionally served over HTTP."""

    def __init__(self, component: str, *, stale_after: float = 30.0) -> None:
        self.component = component
        self.task: str | None = None
        self.stale_after = stale_after
        self._beat = time.monotonic()
        self._ready = False
        self._reason = "agent.starting"
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def beat(self) -> None:
        with self._lock:
            self._beat = time.monotonic()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Long work that polls nothing (training, a stream, serving): alive meanwhile."""
        done = threading.Event()

        def keep() -> None:
            while not done.wait(min(5.0, self.stale_after / 3)):
                self.beat()

        thread = threading.Thread(target=keep, name=f"{self.component}-busy", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self.beat()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        with self._lock:
            self._ready, self._reason = ready, reason
            self._beat = time.monotonic()

    def live(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            age = time.monotonic() - self._beat
        ok = age <= self.stale_after
        return ok, self._doc("alive" if ok else "stale", {"seconds_since_poll": round(age, 1)})

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        alive, _ = self.live()
        with self._lock:
            ready, reason = self._ready, self._reason
        ok = alive and ready
        return ok, self._doc("ready" if ok else "not_ready", {"reason": reason or None})

    def _doc(self, status: str, extra: dict[str, Any]) -> dict[str, Any]:
        return {"status": status, "component": self.component, "task": self.task, **extra}

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Answer ``/healthz`` and ``/readyz`` on ``host:port`` (0 = any free port)."""
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    ok, doc = health.live()
                elif self.path == "/readyz":
                    ok, doc = health.readiness()
                else:
                    self._send(404, {"status": "not_found", "paths": ["/healthz", "/readyz"]})
                    return
                self._send(200 if ok else 503, doc)

            def _send(self, code: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # probes every few seconds would drown the agent's own log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, name=f"{self.component}-health", daemon=True
        ).start()
        bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
