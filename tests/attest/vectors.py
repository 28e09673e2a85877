"""Load the real attestation vectors in ``<repo>/../shared/vectors`` (or ``$CHRONOSEAL_VECTORS``).

The vectors are third-party data files (quotes, reports, certificates, collateral) that the
hardware verifiers are tested against; see that directory's README for provenance. A missing
directory is an error, not a skip: tests that silently skip would prove nothing.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

_REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = "CHRONOSEAL_VECTORS"


def vectors_dir() -> Path:
    """Return the vectors directory, honouring ``$CHRONOSEAL_VECTORS``."""
    configured = os.environ.get(ENV_VAR)
    root = Path(configured) if configured else _REPO_ROOT.parent / "shared" / "vectors"
    if not root.is_dir():
        raise FileNotFoundError(
            f"attestation vectors not found at {root}; set {ENV_VAR} to the shared/vectors folder"
        )
    return root


def vector_path(relative: str) -> Path:
    """Return the path of one vector file, failing loudly when it is absent."""
    path = vectors_dir() / relative
    if not path.is_file():
        raise FileNotFoundError(f"attestation vector {relative} not found under {vectors_dir()}")
    return path


def vector_bytes(relative: str) -> bytes:
    """Raw bytes of a binary vector (quote, report, DER certificate)."""
    return vector_path(relative).read_bytes()


def vector_hex(relative: str) -> bytes:
    """Bytes of a vector stored as hex text (whitespace and a ``0x`` prefix ignored)."""
    text = "".join(vector_path(relative).read_text().split())
    return bytes.fromhex(text.removeprefix("0x"))


def vector_json(relative: str) -> dict[str, Any]:
    """A JSON vector (collateral) as a dict."""
    loaded = json.loads(vector_path(relative).read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{relative} is not a JSON object")
    return loaded


def utc(text: str) -> datetime:
    """Parse an ISO date such as ``2025-07-01`` as midnight UTC (vectors pin ``now``)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def snp_cert_table(certs: list[tuple[uuid.UUID, bytes]]) -> bytes:
    """A GHCB certificate table the way a host fills it: entries, zero entry, then the DERs."""
    offset = (len(certs) + 1) * 24
    table = bytearray()
    blobs = bytearray()
    for guid, der in certs:
        table += guid.bytes + struct.pack("<II", offset, len(der))
        blobs += der
        offset += len(der)
    return bytes(table + bytes(24) + blobs)


def milan_auxblob() -> bytes:
    """The auxblob a Milan host with VCEK, ASK and ARK installed returns (real certificates)."""
    from chronoseal.attest._configfs import GUID_ARK, GUID_ASK, GUID_VCEK

    ask, ark = x509.load_pem_x509_certificates(vector_bytes("virtee-sev/cert_chain_milan"))
    return snp_cert_table(
        [
            (GUID_VCEK, vector_bytes("virtee-sev/vcek_milan.der")),
            (GUID_ASK, ask.public_bytes(Encoding.DER)),
            (GUID_ARK, ark.public_bytes(Encoding.DER)),
        ]
    )
