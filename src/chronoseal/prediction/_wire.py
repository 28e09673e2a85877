"""What travels between a party's forecast client and the prediction runtime.

A request is one JSON object ``{party, request_id, series, signature}`` (optionally a
shorter ``horizon``, and ``input: {sha256, rows}`` when a second chunk carries the
requester's own newest observations as Arrow IPC, desensitized by its gateway); the
signature is by a key the chain registers for ``party`` over :func:`signing_digest`, which
binds the task, the party, both attested endpoints' certificate fingerprints and every other
field of the request (the observations through their hash) — so it can be neither replayed
to another runtime nor altered. The answer is a JSON header (``served`` or ``refused`` with
its id, and the request's audit sequence number) and, when served, the forecast as Arrow IPC
in statsforecast's long format. ``want = "input.key"`` asks for the task key a series
holder's gateway desensitizes its observations with (as the training welcome gives it).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from typing import Any

from coincurve import PrivateKey, PublicKey
from eth_hash.auto import keccak
from web3 import Web3

from chronoseal._decode import detail, loads_json
from chronoseal.errors import PeerRefused
from chronoseal.ledger import Consortium

MODEL_STREAM = "model"
REQUEST_STREAM = "forecast-request"
RESPONSE_STREAM = "forecast-response"
#: A series holder asks for the task key its gateway desensitizes observations with.
INPUT_KEY = "input.key"
_SIGNING_LABEL = b"chronoseal.forecast.request.v1"

#: Raises unless ``signature`` over ``digest`` is by a current key of ``party``.
PartyVerifier = Callable[[str, bytes, bytes], None]


def encode_json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


#: A request or answer header is a few fields; the observations travel in their own chunk.
MAX_HEADER_BYTES = 1 << 20
#: Every field a request may carry; anything else is refused, not carried along unread.
REQUEST_KEYS = frozenset(
    {"party", "request_id", "series", "horizon", "input", "want", "seq", "signature"}
)


def decode_json(
    data: bytes, what: str, *, id: str = "prediction.request.malformed"
) -> dict[str, Any]:
    """A JSON object within MAX_HEADER_BYTES and the decoder's depth, or ``PeerRefused``."""
    try:
        obj = loads_json(data, max_bytes=MAX_HEADER_BYTES, what=what)
    except ValueError as exc:
        raise PeerRefused(f"malformed {what}: {detail(exc)}", id=id) from exc
    if not isinstance(obj, dict):
        raise PeerRefused(f"malformed {what}: not a JSON object", id=id)
    return obj


def decode_request(data: bytes) -> dict[str, Any]:
    """A forecast request of known fields only, each of its type, before its signature is
    checked (so nothing unchecked is carried into the signing digest or the runtime)."""
    request = decode_json(data, "request")
    unknown = sorted(set(request) - REQUEST_KEYS)
    if unknown:
        raise PeerRefused(
            f"the request carries unknown fields {', '.join(map(repr, unknown[:5]))}",
            id="prediction.request.malformed",
        )
    for key in ("party", "request_id", "signature", "want"):
        if key in request and not isinstance(request[key], str):
            raise PeerRefused(
                f"the request's {key} is not a string", id="prediction.request.malformed"
            )
    series = request.get("series")
    if series is not None and (
        not isinstance(series, list) or not all(isinstance(x, str) for x in series)
    ):
        raise PeerRefused(
            "the request's series is not a list of names", id="prediction.request.malformed"
        )
    return request


def request_digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def signing_digest(
    task_id: bytes, party: str, client_fp: bytes, runtime_fp: bytes, request: dict[str, Any]
) -> bytes:
    """What the party's key signs: task, party, both endpoints and the unsigned request."""
    unsigned = encode_json({k: v for k, v in request.items() if k != "signature"})
    h = hashlib.sha256(_SIGNING_LABEL)
    for part in (task_id, party.encode(), client_fp, runtime_fp, unsigned):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_EIP191_32 = b"\x19Ethereum Signed Message:\n32"


def recover_signer(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address whose key made ``signature`` over the EIP-191 message of the
    32-byte ``digest`` — what ``Account.recover_message(encode_defunct(primitive=digest))``
    returns, straight through libsecp256k1 (coincurve, eth-account's own backend) at a
    third of its cost, since every forecast request is verified."""
    if len(digest) != 32 or len(signature) != 65:
        raise ValueError("a signature is 65 bytes over a 32-byte digest")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    # High s is the malleable twin of a valid signature: refused, as the contract refuses it.
    if v not in (0, 1) or not 0 < r < _SECP256K1_N or not 0 < s <= _SECP256K1_N // 2:
        raise ValueError("the signature's r, s or v is out of range (s must be low)")
    message = keccak(_EIP191_32 + digest)
    public = PublicKey.from_signature_and_message(signature[:64] + bytes([v]), message, hasher=None)
    return keccak(public.format(compressed=False)[1:])[-20:]


def party_signer(private_key: bytes) -> Callable[[bytes], bytes]:
    """Signs a request digest as ``Account.sign_message(encode_defunct(primitive=digest))``
    does — libsecp256k1's deterministic (RFC 6979), low-s recoverable signature over the
    EIP-191 message, ``v`` as 27 or 28 — without eth-account's per-call key parsing."""
    key = PrivateKey(private_key)

    def sign(digest: bytes) -> bytes:
        if len(digest) != 32:
            raise ValueError("a request digest is 32 bytes")
        signature = key.sign_recoverable(keccak(_EIP191_32 + digest), hasher=None)
        return signature[:64] + bytes([signature[64] + 27])

    return sign


def party_key_verifier(consortium: Consortium, *, block_interval: float = 0.5) -> PartyVerifier:
    """The signature must recover to a key the chain registers for ``party``. The chain's
    answer is reused until the next block (no key is added or removed without one), and the
    block number itself is re-read at most every ``block_interval`` seconds, so a busy
    runtime asks the chain about once per block, not once per request: a key removed on
    chain is refused from the first request ``block_interval`` seconds after its block."""
    cache: dict[bytes, tuple[str, str | None]] = {}
    seen_block = -1
    read_at = -math.inf

    def verify(party: str, digest: bytes, signature: bytes) -> None:
        nonlocal seen_block, read_at
        try:
            raw = recover_signer(digest, signature)
        except (ValueError, TypeError) as exc:
            raise PeerRefused(
                f"the request signature for {party} is malformed",
                id="channel.intake.bad_signature",
            ) from exc
        now = time.monotonic()
        if now - read_at >= block_interval:
            read_at = now
            block = consortium.chain.block_number()
            if block != seen_block:
                cache.clear()
                seen_block = block
        if raw not in cache:
            signer = str(Web3.to_checksum_address(raw))
            cache[raw] = (signer, consortium.org_of_key(signer))
        signer, org = cache[raw]
        if org != party:
            raise PeerRefused(
                f"the request for {party} is signed by {signer}, which is not a key of {party}",
                id="channel.intake.not_party_key",
            )

    return verify
