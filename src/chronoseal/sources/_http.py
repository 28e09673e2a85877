"""Plain HTTP to a party's time-series server (InfluxDB, Prometheus, VictoriaMetrics).

The standard library's ``http.client`` is enough: each store answers JSON over HTTP/1.1, and
a streamed (chunked) response is read line by line, so nothing beyond one line or one page is
ever held. Credentials never travel in a source URL: ``auth=env:NAME`` names an environment
variable and ``auth=file:PATH`` a file (a mounted Secret), either holding ``user:password``
(HTTP Basic) or a token (``Authorization: Token`` for InfluxDB, ``Bearer`` otherwise). Every
failure is a stable refusal: ``data.source.unavailable`` (no answer, a server error),
``data.source.credentials`` (401/403, or the named credentials absent).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from chronoseal.errors import DataError

from ._url import SourceUrl

#: Seconds to wait for a connection or for the next bytes of an answer.
TIMEOUT_S = 120.0


def _credentials_error(where: str, why: str) -> DataError:
    return DataError(f"{where}: {why}", id="data.source.credentials", context={"source": where})


def authorization(location: SourceUrl, base_dir: Path | None, where: str) -> str | None:
    """The ``Authorization`` header the URL's ``auth=`` names, read now (never logged)."""
    ref = location.param("auth")
    if ref is None:
        return None
    kind, _, name = ref.partition(":")
    if kind == "env":
        secret = os.environ.get(name)
        if not secret:
            raise _credentials_error(where, f"the environment variable {name} is unset or empty")
    else:
        path = Path(name)
        if not path.is_absolute():
            if base_dir is None:
                raise _credentials_error(where, f"auth file {name} is relative and no base dir")
            path = base_dir / path
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise _credentials_error(
                where, f"cannot read the auth file {path}: {exc.strerror}"
            ) from None
        if not secret:
            raise _credentials_error(where, f"the auth file {path} is empty")
    if ":" in secret:
        return "Basic " + base64.b64encode(secret.encode()).decode("ascii")
    return ("Token " if location.kind == "influxdb" else "Bearer ") + secret


class HttpServer:
    """One store's HTTP API: a fresh connection per request, closed when it is read."""

    def __init__(self, location: SourceUrl, base_dir: Path | None, where: str) -> None:
        self._location = location
        self._base_dir = base_dir
        self._where = where

    def _unavailable(self, why: str) -> DataError:
        return DataError(
            f"{self._where}: {why}", id="data.source.unavailable", context={"source": self._where}
        )

    @contextmanager
    def request(
        self, path: str, params: Mapping[str, str], *, post: bool = False
    ) -> Iterator[http.client.HTTPResponse]:
        """The response to ``GET path?params`` (or a form POST), status checked."""
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        auth = authorization(self._location, self._base_dir, self._where)
        if auth is not None:
            headers["Authorization"] = auth
        body = urlencode(params)
        host, port = self._location.host or "", self._location.port
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
        try:
            try:
                if post:
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                    conn.request("POST", path, body=body, headers=headers)
                else:
                    conn.request("GET", f"{path}?{body}", headers=headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise self._unavailable(
                    f"no answer from {self._location.http_base()}: {exc}"
                ) from None
            if response.status in (401, 403):
                raise _credentials_error(
                    self._where,
                    f"the server refused the credentials (HTTP {response.status}): check the "
                    f"{'auth= ' + str(self._location.param('auth')) if auth else 'missing auth='}"
                    " parameter's user and password or token",
                )
            # 400 and 422 carry the store's own JSON explanation: the caller reads it.
            if response.status >= 300 and response.status not in (400, 422):
                text = response.read(2000).decode("utf-8", "replace")
                raise self._unavailable(f"HTTP {response.status}: {text.strip()}")
            yield response
        except (OSError, http.client.HTTPException) as exc:
            raise self._unavailable(f"the answer broke off: {exc}") from None
        finally:
            conn.close()

    def get_json(self, path: str, params: Mapping[str, str], *, post: bool = False) -> Any:
        """The whole JSON answer (small answers only: metadata, one page)."""
        with self.request(path, params, post=post) as response:
            raw = response.read()
            status = response.status
        try:
            doc = json.loads(raw)
        except ValueError:
            raise self._unavailable(
                f"HTTP {status} with an answer that is not JSON: {raw[:200]!r}"
            ) from None
        return doc

    def json_lines(self, path: str, params: Mapping[str, str]) -> Iterator[Any]:
        """One JSON document per line of a streamed answer (InfluxDB's ``chunked=true``)."""
        with self.request(path, params) as response:
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        raise self._unavailable(
                            f"a streamed answer line is not JSON: {line[:200]!r}"
                        ) from None
