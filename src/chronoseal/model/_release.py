"""The release format: one document per party, a manifest over them, one digest on chain.

Each party's document (RFC 8785 JSON) carries a fresh random nonce, so its hash reveals
nothing about its values; the manifest lists every party's document hash beside the model
commitment, and the manifest's SHA-256 is the ``metrics_digest`` posted with the model
commitment. A party that receives its document and the manifest checks both against the
chain alone (:func:`verify_release`) and learns nothing of what others received.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import rfc8785

from chronoseal._decode import loads_json
from chronoseal.errors import AnalysisError

#: A release holds metrics and contributions, never data: far below this.
MAX_RELEASE_BYTES = 64 << 20


@dataclass(frozen=True)
class ReleaseSet:
    """Every party's release document, the manifest over them, and its on-chain digest."""

    manifest: dict[str, Any]
    digest: bytes
    documents: dict[str, dict[str, Any]]

    def for_party(self, party: str) -> bytes:
        """What the runtime sends ``party``: its document and the manifest."""
        doc = self.documents.get(party)
        if doc is None:
            raise AnalysisError(
                f"the task releases nothing to {party}", id="analysis.release.nothing"
            )
        return json.dumps({"document": doc, "manifest": self.manifest}).encode()


def document_hash(document: dict[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def manifest_digest(manifest: dict[str, Any]) -> bytes:
    return hashlib.sha256(rfc8785.dumps(manifest)).digest()


def verify_release(
    payload: bytes,
    *,
    party: str,
    task_id: bytes,
    metrics_digest: bytes,
    model_commitment: bytes,
) -> dict[str, Any]:
    """A party's check of what it received against the chain; returns its document."""
    try:
        body = loads_json(payload, max_bytes=MAX_RELEASE_BYTES, what="release")
        document, manifest = body["document"], body["manifest"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AnalysisError("the release is malformed", id="analysis.release.malformed") from exc
    if not isinstance(document, dict) or not isinstance(manifest, dict):
        raise AnalysisError("the release is malformed", id="analysis.release.malformed")
    if not hmac.compare_digest(manifest_digest(manifest), metrics_digest):
        raise AnalysisError(
            "the release manifest does not hash to the metrics digest on chain",
            id="analysis.release.digest_mismatch",
        )
    expected = {
        "task_id": "0x" + task_id.hex(),
        "model_commitment": "0x" + model_commitment.hex(),
    }
    if any(manifest.get(k) != v for k, v in expected.items()) or document.get("party") != party:
        raise AnalysisError(
            "the release is for another task, model or party",
            id="analysis.release.wrong_subject",
        )
    listed = manifest.get("parties", {}).get(party)
    if not isinstance(listed, str) or not hmac.compare_digest(listed, document_hash(document)):
        raise AnalysisError(
            f"{party}'s release document is not the one the manifest commits to",
            id="analysis.release.digest_mismatch",
        )
    return document
