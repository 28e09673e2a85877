"""The forecast request's signature check: the fast recovery is eth-account's recovery,
signature for signature, refuses what eth-account refuses, and takes ``v`` only in the
forms a message signature has (0, 1, 27, 28; eth-account also reads EIP-155 values)."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoseal.errors import PeerRefused
from chronoseal.prediction._wire import decode_request, party_signer, recover_signer

HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2

KEYS = [Account.create() for _ in range(4)]


def _reference(digest: bytes, signature: bytes) -> bytes | None:
    try:
        address = Account.recover_message(encode_defunct(primitive=digest), signature=signature)
    except Exception:  # any refusal by the reference counts as a refusal
        return None
    return bytes.fromhex(address[2:])


def _ours(digest: bytes, signature: bytes) -> bytes | None:
    try:
        return recover_signer(digest, signature)
    except ValueError:
        return None


@settings(max_examples=200, deadline=None)
@given(
    key=st.sampled_from(KEYS),
    digest=st.binary(min_size=32, max_size=32),
    flip=st.one_of(st.none(), st.integers(min_value=0, max_value=65 * 8 - 1)),
)
def test_recovery_agrees_with_eth_account_on_genuine_and_mutated_signatures(
    key: object, digest: bytes, flip: int | None
) -> None:
    signature = bytearray(key.sign_message(encode_defunct(primitive=digest)).signature)  # type: ignore[attr-defined]
    if flip is not None:
        signature[flip // 8] ^= 1 << (flip % 8)
    got, want = _ours(digest, bytes(signature)), _reference(digest, bytes(signature))
    if int.from_bytes(signature[32:64], "big") > HALF_N:
        assert got is None  # the malleable twin, which eth-account still takes
    elif signature[64] in (0, 1, 27, 28):
        assert got == want
    else:
        assert got is None
    if flip is None:
        assert got == bytes.fromhex(key.address[2:])  # type: ignore[attr-defined]


@given(signature=st.binary(min_size=0, max_size=80))
def test_arbitrary_bytes_are_refused_or_recover_as_eth_account_does(signature: bytes) -> None:
    digest = b"\x07" * 32
    got = _ours(digest, signature)
    assert got is None or got == _reference(digest, signature)
    if int.from_bytes(signature[32:64], "big") > HALF_N:
        assert got is None


@settings(max_examples=100, deadline=None)
@given(key=st.sampled_from(KEYS), digest=st.binary(min_size=32, max_size=32))
def test_the_fast_signer_signs_exactly_as_eth_account(key: object, digest: bytes) -> None:
    ours = party_signer(bytes(key.key))(digest)  # type: ignore[attr-defined]
    theirs = key.sign_message(encode_defunct(primitive=digest)).signature  # type: ignore[attr-defined]
    assert ours == bytes(theirs)
    assert recover_signer(digest, ours) == bytes.fromhex(key.address[2:])  # type: ignore[attr-defined]


def test_the_high_s_twin_of_a_valid_signature_is_refused() -> None:
    key, digest = KEYS[0], b"\x05" * 32
    good = key.sign_message(encode_defunct(primitive=digest)).signature  # type: ignore[attr-defined]
    s = int.from_bytes(good[32:64], "big")
    twin = good[:32] + (2 * HALF_N + 1 - s).to_bytes(32, "big") + bytes([55 - good[64]])
    assert _reference(digest, twin) == bytes.fromhex(key.address[2:])  # type: ignore[attr-defined]
    assert _ours(digest, twin) is None


@pytest.mark.parametrize(
    "body",
    [
        {"party": "a", "request_id": "r1", "series": [], "signature": "00", "pad": "x" * 100},
        {"party": "a", "request_id": 7, "series": [], "signature": "00"},
        {"party": "a", "request_id": ["r"], "series": [], "signature": "00"},
        {"party": 1, "request_id": "r1", "series": [], "signature": "00"},
        {"party": "a", "request_id": "r1", "series": "s1", "signature": "00"},
        {"party": "a", "request_id": "r1", "series": [1], "signature": "00"},
        {"party": "a", "request_id": "r1", "signature": {"r": 1}},
    ],
)
def test_a_request_with_unknown_fields_or_fields_of_another_type_is_refused(
    body: dict[str, object],
) -> None:
    with pytest.raises(PeerRefused) as refused:
        decode_request(json.dumps(body).encode())
    assert refused.value.id == "prediction.request.malformed"


def test_a_request_of_known_fields_decodes() -> None:
    request = {"party": "a", "request_id": "r1", "series": ["s"], "horizon": 3, "signature": "00"}
    assert decode_request(json.dumps(request).encode()) == request
