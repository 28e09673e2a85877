"""Serve the explorer with uvicorn: in the foreground (the CLI) or on a background thread
next to an in-process chain (the demo, the browser tests)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from web3 import Web3

from chronoseal.explorer._app import create_app
from chronoseal.explorer._errors import ExplorerError
from chronoseal.explorer._read import check_consortium
from chronoseal.ledger import Consortium, JsonRpcChain

START_TIMEOUT_S = 20.0


def open_consortium(rpc_url: str, address: str, *, from_block: int = 0) -> Consortium:
    """Attach to the consortium at ``address`` over JSON-RPC, refusing anything else there.

    Raises ``ledger.chain.unavailable`` when no node answers and
    ``explorer.contract.not_consortium`` when the address holds no consortium.
    """
    if not Web3.is_address(address):
        raise ExplorerError(
            f"--contract must be a 0x-prefixed 20-byte hex address, got {address[:80]!r}",
            id="explorer.contract.malformed",
        )
    if from_block < 0:
        raise ExplorerError("--from-block must be 0 or more", id="explorer.from_block.invalid")
    chain = JsonRpcChain(rpc_url)
    consortium = Consortium(chain, Web3.to_checksum_address(address), deploy_block=from_block)
    check_consortium(consortium)
    return consortium


def _config(consortium: Consortium, host: str, port: int, from_block: int | None) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(consortium, from_block=from_block),
        host=host,
        port=port,
        http="h11",
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ExplorerError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", id="explorer.listen.failed"
        ) from exc
    sock.set_inheritable(True)
    return sock


def serve_explorer(
    consortium: Consortium,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    from_block: int | None = None,
) -> None:
    """Serve the explorer for ``consortium`` until interrupted (blocks the calling thread)."""
    sock = _bind(host, port)
    try:
        uvicorn.Server(_config(consortium, host, port, from_block)).run(sockets=[sock])
    finally:
        sock.close()


class RunningExplorer:
    """An explorer served on a background thread; ``url`` is where it listens."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket):
        self._server, self._thread, self._sock = server, thread, sock
        host, port = sock.getsockname()[:2]
        self.host, self.port = str(host), int(port)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> RunningExplorer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_explorer(
    consortium: Consortium,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    from_block: int | None = None,
) -> RunningExplorer:
    """Serve the explorer on a background thread (port 0: any free port); returns once it
    accepts connections. Use it next to an in-process chain, e.g. the demo's."""
    sock = _bind(host, port)
    server = uvicorn.Server(_config(consortium, host, port, from_block))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="chronoseal-explorer", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise ExplorerError(
                f"the explorer did not start on {host}:{port}", id="explorer.listen.failed"
            )
        time.sleep(0.02)
    return RunningExplorer(server, thread, sock)
