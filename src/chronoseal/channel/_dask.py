"""``ratls://``: Dask's TLS comm where every connection is mutual RA-TLS 1.3.

Dask finds the backend through its own ``distributed.comm.backends`` entry point (declared
in ``pyproject.toml``; an installed chronoseal's metadata carries it), and every
:class:`RaTlsSecurity` registers the same class too, so a process running chronoseal from a
source tree (``PYTHONPATH``, metadata of an older install) speaks ``ratls://`` alike.

It is Dask's TLS backend with two changes: the SSL contexts come from a :class:`RaTlsTrust`
(this process's RA-TLS identity, and the exact certificates of the peers it admitted as its only
trust anchors), and every connection, in either direction, is checked against that trust after
the TLS handshake and before Dask's own handshake sends a byte: a peer certificate that is not
one of the admitted ones, or whose admission was withdrawn, is dropped with its refusal id.

Python's ``ssl`` has no verification callback (``notes/python-tls.md``), so a peer is
*admitted* before it connects: its certificate reaches the admitting side out of band (the
analysis runtime reads it from the worker process it started), is appraised there like any
other component's (:func:`appraise_certificate`: evidence bound to the key, fresh nonce,
pinned and approved measurement, simulation policy), and only then becomes a trust anchor.
A trust store can grow but not shrink, so a withdrawn peer is refused by fingerprint at
every new connection. Plain ``tcp://`` is refused by configuration: every
:class:`RaTlsSecurity` requires encryption, so Dask refuses to listen or connect without
TLS.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from distributed.comm.core import FatalCommClosedError
from distributed.comm.registry import backends
from distributed.comm.tcp import TLS, TLSBackend, TLSConnector, TLSListener
from distributed.security import Security

from chronoseal.channel._ratls import RaTlsIdentity
from chronoseal.errors import PeerRefused

log = logging.getLogger("chronoseal.channel")

SCHEME = "ratls"

T = TypeVar("T")


def _context(identity: RaTlsIdentity, purpose: ssl.Purpose) -> ssl.SSLContext:
    server = purpose is ssl.Purpose.CLIENT_AUTH
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # Peers are named by their certificate, not a host name: loopback, pod IPs.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    # A peer's RA-TLS certificate is its own trust anchor (self-signed, not a CA).
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    if server:
        context.num_tickets = 0  # every connection presents, and is checked on, a certificate
    identity.load_into(context)
    return context


class RaTlsTrust:
    """One Dask endpoint's RA-TLS identity and the peers it admits.

    ``admit`` appraises a certificate with ``appraise`` (which raises :class:`PeerRefused`)
    and makes it a trust anchor of both contexts; ``withdraw`` refuses it from then on.
    The endpoint's own certificate is admitted (its client talks to its own scheduler).
    """

    def __init__(self, identity: RaTlsIdentity) -> None:
        self.identity = identity
        self.server_context = _context(identity, ssl.Purpose.CLIENT_AUTH)
        self.client_context = _context(identity, ssl.Purpose.SERVER_AUTH)
        self._lock = threading.Lock()
        self._admitted: dict[bytes, bytes] = {}
        self._withdrawn: set[bytes] = set()
        self._anchor(identity.certificate_der)

    def _anchor(self, certificate_der: bytes) -> bytes:
        fingerprint = hashlib.sha256(certificate_der).digest()
        with self._lock:
            if fingerprint not in self._admitted:
                for context in (self.server_context, self.client_context):
                    context.load_verify_locations(cadata=certificate_der)
                self._admitted[fingerprint] = certificate_der
            self._withdrawn.discard(fingerprint)
        return fingerprint

    def admit(self, certificate_der: bytes, appraise: Callable[[bytes], T]) -> T:
        """Appraise ``certificate_der`` (``appraise`` raises :class:`PeerRefused` when it
        does not pass), then accept it on every later connection; returns the verdict."""
        verdict = appraise(certificate_der)
        self._anchor(certificate_der)
        return verdict

    @staticmethod
    def fingerprint(certificate_der: bytes) -> bytes:
        return hashlib.sha256(certificate_der).digest()

    def withdraw(self, fingerprint: bytes) -> None:
        """Refuse this peer on every new connection (its measurement was revoked, it died)."""
        with self._lock:
            self._withdrawn.add(fingerprint)

    def check(self, certificate_der: bytes | None) -> None:
        """Accept a connection's peer only when its certificate is an admitted one."""
        if not certificate_der:
            raise PeerRefused(
                "the Dask peer presented no certificate", id="channel.dask.no_certificate"
            )
        fingerprint = hashlib.sha256(certificate_der).digest()
        with self._lock:
            admitted = any(hmac.compare_digest(fingerprint, f) for f in self._admitted)
            withdrawn = any(hmac.compare_digest(fingerprint, f) for f in self._withdrawn)
        if not admitted:
            raise PeerRefused(
                "the Dask peer's certificate was never admitted (appraised) by this endpoint",
                id="channel.dask.not_admitted",
            )
        if withdrawn:
            raise PeerRefused(
                "the Dask peer's admission was withdrawn", id="channel.dask.withdrawn"
            )

    def security(self) -> RaTlsSecurity:
        return RaTlsSecurity(self)


class RaTlsSecurity(Security):
    """A ``distributed.Security`` whose contexts are a :class:`RaTlsTrust`'s; encryption is
    always required, so Dask itself refuses ``tcp://`` (and ``inproc://``)."""

    __slots__ = ("trust",)

    def __init__(self, trust: RaTlsTrust) -> None:
        super().__init__(require_encryption=True)
        self.trust = trust
        register_backend()

    def get_connection_args(self, role: str) -> dict[str, Any]:
        return {
            "ssl_context": self.trust.client_context,
            "require_encryption": True,
            "extra_conn_args": {},
            "ratls_trust": self.trust,
        }

    def get_listen_args(self, role: str) -> dict[str, Any]:
        return {
            "ssl_context": self.trust.server_context,
            "require_encryption": True,
            "ratls_trust": self.trust,
        }

    def __repr__(self) -> str:
        return f"RaTlsSecurity({self.trust.identity!r})"


def _trust_of(connection_args: dict[str, Any]) -> RaTlsTrust:
    trust = connection_args.get("ratls_trust")
    if not isinstance(trust, RaTlsTrust):
        # No RA-TLS trust means no appraisal: refuse rather than run as plain TLS.
        raise FatalCommClosedError(
            "[channel.dask.no_trust] ratls:// needs a chronoseal RaTlsSecurity "
            "(distributed.Security(...) for ratls:// is refused)"
        )
    return trust


def _peer_certificate(stream: Any) -> bytes | None:
    """The peer's certificate on a handshaken TLS stream (tornado's ``SSLIOStream``)."""
    sock = None if stream is None else stream.socket
    if not isinstance(sock, ssl.SSLSocket):
        return None
    return sock.getpeercert(binary_form=True)


class RaTlsConnector(TLSConnector):
    prefix = f"{SCHEME}://"
    comm_class = TLS
    encrypted = True

    async def connect(self, address: str, deserialize: bool = True, **connection_args: Any) -> TLS:
        trust = _trust_of(connection_args)
        comm: TLS = await super().connect(address, deserialize, **connection_args)
        try:
            trust.check(_peer_certificate(comm.stream))
        except PeerRefused as exc:
            comm.abort()
            log.warning("refused Dask peer %s: [%s] %s", address, exc.id, exc.message)
            raise FatalCommClosedError(f"[{exc.id}] {exc.message}") from exc
        return comm


class RaTlsListener(TLSListener):
    prefix = f"{SCHEME}://"
    comm_class = TLS
    encrypted = True

    def __init__(self, address: str, comm_handler: Any, deserialize: bool = True, **kw: Any):
        self._trust = _trust_of(kw)
        super().__init__(address, comm_handler, deserialize, **kw)

    async def _prepare_stream(self, stream: Any, address: str) -> Any:
        """The TLS handshake, then the admission check; a refused stream is closed here
        (Dask's own TLS listener leaves a failed handshake's socket to the collector)."""
        try:
            await stream.wait_for_handshake()
            self._trust.check(_peer_certificate(stream))
        except OSError as exc:
            log.warning(
                "refused Dask peer %s: [channel.dask.handshake_failed] %s",
                address,
                getattr(exc, "real_error", None) or exc,
            )
            stream.close()
            return None
        except PeerRefused as exc:
            log.warning("refused Dask peer %s: [%s] %s", address, exc.id, exc.message)
            stream.close()
            return None
        return stream


class RaTlsBackend(TLSBackend):
    """What the ``distributed.comm.backends`` entry point ``ratls`` loads."""

    _connector_class = RaTlsConnector
    _listener_class = RaTlsListener  # type: ignore[assignment]  # a TLSListener subclass


def register_backend() -> None:
    """``ratls`` in Dask's registry unless already there (the entry point loaded it, or an
    earlier Security did); the same class either way, so nothing weaker can take its place."""
    if not isinstance(backends.get("ratls"), RaTlsBackend):
        backends["ratls"] = RaTlsBackend()
