"""The explorer as a Starlette app: read-only GET routes, HTML or JSON at every path.

Every page catches up the event cache first (only the blocks after its cursor), then reads
what it shows. Nothing here holds a key or builds a transaction: the app only calls the
contract's views and reads blocks and logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chronoseal._hex import short_hex
from chronoseal.errors import ChainUnavailable, ChronosealError, LedgerError
from chronoseal.explorer import _read
from chronoseal.explorer._cache import EventCache
from chronoseal.explorer._errors import ExplorerError, NotConsortium
from chronoseal.ledger import Consortium

log = logging.getLogger("chronoseal.explorer")

#: How often the pages ask ``/api/status`` whether new events arrived (milliseconds).
POLL_MS = 2000
STATIC = {
    "explorer.css": "text/css; charset=utf-8",
    "explorer.js": "text/javascript; charset=utf-8",
}
SECURITY_HEADERS = {
    # Everything the pages need is served by the app itself: no inline script, no network.
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}

Builder = Callable[..., dict[str, Any]]


class Explorer:
    """One consortium, its event cache and the templates that render its pages."""

    def __init__(self, consortium: Consortium, *, from_block: int | None = None) -> None:
        self.consortium = consortium
        self.cache = EventCache(consortium, from_block=from_block)
        self.code_matches_build: bool | None = None
        self.templates = Environment(
            loader=PackageLoader("chronoseal.explorer", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["short"] = _short
        self.templates.filters["short_hex"] = short_hex

    def read(self, builder: Builder, *args: Any) -> dict[str, Any]:
        """Catch up the cache, then build one page; the lock keeps one reader at a time."""
        with self.cache.lock:
            try:
                if self.code_matches_build is None:
                    self.code_matches_build = _read.check_consortium(self.consortium)
                self.cache.refresh()
                data = builder(self.consortium, self.cache, *args)
            except ChainUnavailable as exc:
                self.cache.down = down_reason(self.consortium, exc)
                raise ChainUnavailable(self.cache.down) from exc
            data["chain"] = self.chain()
            return data

    def chain(self) -> dict[str, Any]:
        return {
            "contract": self.consortium.address,
            "chain_kind": self.consortium.chain.kind,
            "chain_id": _safe_chain_id(self.consortium),
            "code_matches_build": self.code_matches_build,
            **self.cache.status(),
        }

    def render(self, template: str, data: dict[str, Any], request: Request) -> str:
        return self.templates.get_template(template).render(
            d=data, path=request.url.path, poll_ms=POLL_MS
        )


def down_reason(consortium: Consortium, exc: ChainUnavailable) -> str:
    """What the pages say when the node is gone: where, and a short cause (no internals)."""
    text = exc.message.lower()
    cause = (
        "connection refused"
        if "refused" in text
        else "timed out"
        if "timed out" in text or "timeout" in text
        else "no answer"
    )
    url = getattr(consortium.chain, "url", None)
    where = f" at {url}" if isinstance(url, str) else ""
    return f"the chain node{where} cannot be reached ({cause})"


def _safe_chain_id(consortium: Consortium) -> int | None:
    try:
        return consortium.chain.chain_id
    except LedgerError:
        return None


def _short(value: object) -> str:
    text = "—" if value is None else str(value)
    return text if len(text) <= 20 else text[:12] + "…" + text[-6:]


def wants_json(request: Request) -> bool:
    """``/api/...`` always; elsewhere when the client prefers JSON to HTML."""
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "").lower()
    if "application/json" not in accept:
        return False
    html = accept.find("text/html")
    return html < 0 or accept.find("application/json") < html


class SecurityHeaders:
    """Adds the headers that keep the pages self-contained and unframeable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers[key] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def error_doc(exc: ChronosealError, status: int) -> dict[str, Any]:
    return {
        "page": "error",
        "status": status,
        "error": {"id": exc.id, "message": exc.message},
        "recover": status == 503,
    }


def create_app(consortium: Consortium, *, from_block: int | None = None) -> Starlette:
    """The explorer's ASGI app for ``consortium`` (events from ``from_block``, default its
    deployment block). It never sends a transaction: only GET and HEAD routes exist."""
    explorer = Explorer(consortium, from_block=from_block)

    def respond(
        request: Request, template: str, data: dict[str, Any], status: int = 200
    ) -> Response:
        if wants_json(request):
            return JSONResponse(data, status_code=status)
        return HTMLResponse(explorer.render(template, data, request), status_code=status)

    def failure(request: Request, exc: ChronosealError, status: int) -> Response:
        data = error_doc(exc, status)
        data["chain"] = explorer.chain()
        return respond(request, "error.html", data, status)

    def page(template: str, builder: Builder, *params: tuple[str, Callable[[str], str]]) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                args = [parse(str(request.path_params[name])) for name, parse in params]
                return respond(request, template, explorer.read(builder, *args))
            except ExplorerError as exc:
                return failure(request, exc, exc.status)
            except ChainUnavailable as exc:
                return failure(request, exc, 503)
            except LedgerError as exc:
                return failure(request, exc, 502)
            except ChronosealError as exc:
                return failure(request, exc, 422)
            except Exception:
                log.exception("explorer page %s failed", request.url.path)
                internal = ChronosealError(
                    "the explorer failed to build this page (the server log has the details)",
                    id="explorer.internal",
                )
                return failure(request, internal, 500)

        return endpoint

    task = ("task_id", lambda t: _read.parse_hex32(t, "task id", "explorer.task_id.malformed"))
    mid = (
        "measurement_id",
        lambda t: _read.parse_hex32(t, "measurement id", "explorer.measurement_id.malformed"),
    )
    address = ("address", _read.parse_address)
    pages: list[tuple[str, str, Builder, tuple[tuple[str, Callable[[str], str]], ...]]] = [
        ("/", "consortium.html", _read.consortium_page, ()),
        ("/consortium", "consortium.html", _read.consortium_page, ()),
        ("/measurements", "measurements.html", _read.measurements_page, ()),
        ("/measurements/{measurement_id}", "measurement.html", _read.measurement_page, (mid,)),
        ("/tasks", "tasks.html", _read.tasks_page, ()),
        ("/tasks/{task_id}", "task.html", _read.task_page, (task,)),
        ("/tasks/{task_id}/verify", "verify.html", _read.verify_page, (task,)),
        ("/address/{address}", "address.html", _read.address_page, (address,)),
    ]
    routes = []
    for path, template, builder, params in pages:
        endpoint = page(template, builder, *params)
        routes.append(Route(path, endpoint, methods=["GET", "HEAD"]))
        api = "/api" + (path if path != "/" else "/consortium")
        if path != "/":
            routes.append(Route(api, endpoint, methods=["GET", "HEAD"]))

    def status(request: Request) -> Response:
        try:
            with explorer.cache.lock:
                explorer.cache.refresh()
            return JSONResponse({"page": "status", **explorer.chain()})
        except ChainUnavailable as exc:
            explorer.cache.down = down_reason(explorer.consortium, exc)
            return JSONResponse({"page": "status", **explorer.chain()}, status_code=503)
        except ChronosealError as exc:
            data = {"page": "status", **explorer.chain(), "error": exc.message}
            return JSONResponse(data, status_code=502)

    def static(request: Request) -> Response:
        name = str(request.path_params["name"])
        if name not in STATIC:
            raise HTTPException(404)
        body = (resources.files("chronoseal.explorer") / "static" / name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"cache-control": "no-store"})

    routes.append(Route("/api/status", status, methods=["GET", "HEAD"]))
    routes.append(Route("/static/{name}", static, methods=["GET", "HEAD"]))

    def http_error(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        if code == 404:
            error = ExplorerError(
                "there is no such page: the explorer has /, /measurements, /tasks, "
                "/tasks/{task id}, /tasks/{task id}/verify, /address/{address} and the same "
                "under /api/",
                id="explorer.page.not_found",
            )
        elif code == 405:
            error = ExplorerError(
                f"the explorer is read-only: {request.method} is not allowed (only GET and "
                "HEAD; it never sends a transaction)",
                id="explorer.method.not_allowed",
            )
        else:
            error = ExplorerError("the request could not be served", id="explorer.request.invalid")
        response = respond(request, "error.html", {**error_doc(error, code), "chain": None}, code)
        if code == 405:
            response.headers["allow"] = "GET, HEAD"
        return response

    def internal_error(request: Request, exc: Exception) -> Response:
        log.error("explorer request %s failed", request.url.path, exc_info=exc)
        error = ChronosealError("the explorer failed (see its log)", id="explorer.internal")
        return respond(request, "error.html", {**error_doc(error, 500), "chain": None}, 500)

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
    app.state.explorer = explorer
    app.add_middleware(SecurityHeaders)
    return app


__all__ = ["Explorer", "NotConsortium", "create_app", "wants_json"]
