"""A real JSON-RPC endpoint over HTTP for an in-process embedded chain, that can go away.

The explorer talks to it with ``JsonRpcChain`` exactly as it would to anvil or Besu; the
requests are executed by eth-tester's provider on the embedded chain. ``stop()`` closes the
listening socket (the node "goes away"), ``start()`` brings it back on the same port.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from web3._utils.encoding import Web3JsonEncoder
from web3.middleware import combine_middleware

from chronoseal.ledger import EmbeddedChain


class RpcProxy:
    def __init__(self, chain: EmbeddedChain) -> None:
        self.chain = chain
        self.lock = threading.Lock()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests = 0

    def request(self, method: str, params: Any) -> Any:
        """The provider's own middleware turns JSON-RPC params into eth-tester's and back."""
        w3 = self.chain.w3
        provider = w3.provider
        send = combine_middleware(
            middleware=tuple(provider._middleware),  # type: ignore[attr-defined]
            w3=w3,
            provider_request_fn=provider.make_request,
        )
        return send(method, params)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with proxy.lock:
                    proxy.requests += 1
                    reply: Any = proxy.request(body["method"], body.get("params", []))
                out = dict(reply)
                out["id"] = body.get("id")
                out["jsonrpc"] = "2.0"
                data = json.dumps(out, cls=Web3JsonEncoder).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
