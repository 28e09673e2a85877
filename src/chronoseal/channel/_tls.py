"""TLS 1.3 contexts for RA-TLS with Python's ``ssl``: TLS 1.3 only, no session tickets."""

from __future__ import annotations

import ssl

from chronoseal.channel._ratls import RaTlsIdentity


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
    identity.load_into(context)
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
