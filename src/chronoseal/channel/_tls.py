"""TLS 1.3 contexts for RA-TLS with Python's ``ssl``.

``ssl`` loads keys only from file paths. The key is handed over through an anonymous
memory file (``memfd_create``), PEM-encrypted under a one-time random password, so it never
touches a filesystem and is unreadable even to a same-user process racing for the fd.
"""

from __future__ import annotations

import os
import secrets
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chronoseal.channel._ratls import RaTlsIdentity
from chronoseal.errors import ChannelError


def server_context(identity: RaTlsIdentity) -> ssl.SSLContext:
    """Present ``identity``'s RA-TLS certificate; ask nothing of the client at TLS level.

    The client proves itself inside the channel (see ``_session``): with ``CERT_REQUIRED``
    Python's ``ssl`` would reject its self-signed certificate before we could appraise it.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_NONE
    # No session tickets: every connection presents (and gets appraised on) a certificate.
    context.num_tickets = 0
    _load_identity(context, identity)
    return context


def client_context() -> ssl.SSLContext:
    """Accept any server certificate at TLS level; the caller appraises it before any byte.

    TLS 1.3's CertificateVerify proves the server holds the certificate's key; appraising
    the evidence in that certificate then proves the key lives in the expected TEE.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _load_identity(context: ssl.SSLContext, identity: RaTlsIdentity) -> None:
    if not hasattr(os, "memfd_create"):
        raise ChannelError(
            "loading an in-memory TLS key needs Linux memfd_create",
            id="channel.tls.no_memfd",
        )
    password = secrets.token_bytes(32)
    certificate_pem = x509.load_der_x509_certificate(identity.certificate_der).public_bytes(
        serialization.Encoding.PEM
    )
    fd = os.memfd_create("chronoseal-ra-tls", os.MFD_CLOEXEC)
    try:
        pending = memoryview(certificate_pem + identity.private_key_pem(password))
        while pending:
            pending = pending[os.write(fd, pending) :]
        context.load_cert_chain(f"/proc/self/fd/{fd}", password=password)
    finally:
        os.close(fd)
