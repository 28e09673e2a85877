"""SM2 signatures with SM3 (GM/T 0003, GM/T 0004) through the system's OpenSSL 3 libcrypto.

Public surface::

    sm2_verify(public_xy: bytes, signature_rs: bytes, message: bytes, *, user_id: bytes) -> bool
    Sm2PrivateKey.generate() -> Sm2PrivateKey     # .public_xy, .sign(message, user_id=...)
    sm2_available() -> bool

``cryptography`` has SM3 and SM4 but no SM2, and Hygon signs every certificate and report
with SM2 using the signer's *distinguishing id* (``HYGON-SSD-HRK`` ...), which enters the
signed digest as Z = SM3(ENTL || ID || curve || key). OpenSSL 3 implements exactly that
(``EVP_PKEY_CTX_set1_id`` then ``EVP_DigestVerify`` with SM3), so this module is a thin
ctypes binding over those calls: no curve arithmetic happens in Python. Keys and signatures
cross this boundary as raw big-endian ``x || y`` and ``r || s`` (32 bytes each); the SM2
public key is handed to libcrypto as a DER SubjectPublicKeyInfo (id-ecPublicKey, curve
1.2.156.10197.1.301), which libcrypto checks is a point on the curve.

Signing exists so that tests and the device fakes can construct certificates and reports
the way Hygon firmware does; chronoseal itself only verifies.

Failure ids: ``attest.sm2.unavailable`` (no OpenSSL 3 libcrypto with SM2 on this host),
``attest.sm2.bad_key`` (not a point on the SM2 curve), ``attest.sm2.failed`` (libcrypto
refused an operation for another reason).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Final

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from chronoseal.errors import AttestationError

__all__ = ["SM2_COORDINATE_SIZE", "Sm2PrivateKey", "sm2_available", "sm2_verify"]

SM2_COORDINATE_SIZE: Final = 32
#: SEQUENCE { SEQUENCE { id-ecPublicKey, sm2p256v1 }, BIT STRING 00 04 ...}: 27 bytes, then x || y.
_SPKI_PREFIX: Final = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200" + "04")
_MIN_OPENSSL: Final = 0x30000000
_c_void_p = ctypes.c_void_p


def _fail(message: str, failure_id: str = "attest.sm2.failed") -> AttestationError:
    return AttestationError(message, id=failure_id)


@functools.cache
def _libcrypto() -> ctypes.CDLL:
    """Load libcrypto 3 once and declare the prototypes used (wrong ones would corrupt memory)."""
    name = ctypes.util.find_library("crypto") or "libcrypto.so.3"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise _fail(
            f"SM2 needs OpenSSL 3 libcrypto and {name} cannot be loaded: {exc} (install the "
            "Debian package libssl3)",
            "attest.sm2.unavailable",
        ) from exc
    signatures: dict[str, tuple[object, list[object]]] = {
        "OpenSSL_version_num": (ctypes.c_ulong, []),
        "ERR_clear_error": (None, []),
        "d2i_PUBKEY": (_c_void_p, [_c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]),
        "i2d_PUBKEY": (ctypes.c_int, [_c_void_p, ctypes.POINTER(_c_void_p)]),
        "CRYPTO_free": (None, [_c_void_p, ctypes.c_char_p, ctypes.c_int]),
        "EVP_PKEY_free": (None, [_c_void_p]),
        "EVP_PKEY_CTX_new": (_c_void_p, [_c_void_p, _c_void_p]),
        "EVP_PKEY_CTX_new_from_name": (_c_void_p, [_c_void_p, ctypes.c_char_p, ctypes.c_char_p]),
        "EVP_PKEY_CTX_free": (None, [_c_void_p]),
        "EVP_PKEY_CTX_set1_id": (ctypes.c_int, [_c_void_p, ctypes.c_char_p, ctypes.c_int]),
        "EVP_PKEY_keygen_init": (ctypes.c_int, [_c_void_p]),
        "EVP_PKEY_generate": (ctypes.c_int, [_c_void_p, ctypes.POINTER(_c_void_p)]),
        "EVP_MD_CTX_new": (_c_void_p, []),
        "EVP_MD_CTX_free": (None, [_c_void_p]),
        "EVP_MD_CTX_set_pkey_ctx": (None, [_c_void_p, _c_void_p]),
        "EVP_sm3": (_c_void_p, []),
        "EVP_DigestVerifyInit": (
            ctypes.c_int,
            [_c_void_p, _c_void_p, _c_void_p, _c_void_p, _c_void_p],
        ),
        "EVP_DigestVerify": (
            ctypes.c_int,
            [_c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t],
        ),
        "EVP_DigestSignInit": (
            ctypes.c_int,
            [_c_void_p, _c_void_p, _c_void_p, _c_void_p, _c_void_p],
        ),
        "EVP_DigestSign": (
            ctypes.c_int,
            [
                _c_void_p,
                ctypes.c_char_p,
                ctypes.POINTER(ctypes.c_size_t),
                ctypes.c_char_p,
                ctypes.c_size_t,
            ],
        ),
    }
    try:
        for symbol, (restype, argtypes) in signatures.items():
            function = getattr(lib, symbol)
            function.restype = restype
            function.argtypes = argtypes
    except AttributeError as exc:
        raise _fail(
            f"{name} lacks {exc}: SM2 with distinguishing ids needs OpenSSL 3",
            "attest.sm2.unavailable",
        ) from exc
    version = int(lib.OpenSSL_version_num())
    if version < _MIN_OPENSSL:
        raise _fail(
            f"{name} is OpenSSL {version:#x}; SM2 with distinguishing ids needs OpenSSL 3",
            "attest.sm2.unavailable",
        )
    if not lib.EVP_sm3():
        raise _fail(f"{name} was built without SM3", "attest.sm2.unavailable")
    return lib


def sm2_available() -> bool:
    """True when libcrypto here can verify SM2 (the CSV backend refuses otherwise)."""
    try:
        _libcrypto()
    except AttestationError:
        return False
    return True


def _split(value: bytes, what: str) -> tuple[int, int]:
    if len(value) != 2 * SM2_COORDINATE_SIZE:
        raise _fail(f"an SM2 {what} is {2 * SM2_COORDINATE_SIZE} bytes, got {len(value)}")
    return (
        int.from_bytes(value[:SM2_COORDINATE_SIZE], "big"),
        int.from_bytes(value[SM2_COORDINATE_SIZE:], "big"),
    )


class _PublicKey:
    """An EVP_PKEY holding an SM2 public key; freed with the object."""

    def __init__(self, public_xy: bytes) -> None:
        lib = _libcrypto()
        _split(public_xy, "public key")
        der = _SPKI_PREFIX + public_xy
        cursor = ctypes.c_char_p(der)
        lib.ERR_clear_error()
        self._lib = lib
        self.pointer: int | None = lib.d2i_PUBKEY(None, ctypes.byref(cursor), len(der))
        if not self.pointer:
            lib.ERR_clear_error()
            raise _fail("the SM2 public key is not a point on the SM2 curve", "attest.sm2.bad_key")

    def __del__(self) -> None:
        if getattr(self, "pointer", None):
            self._lib.EVP_PKEY_free(self.pointer)
            self.pointer = None


def _digest_operation(lib: ctypes.CDLL, pkey: int, user_id: bytes, sign: bool) -> tuple[int, int]:
    """An EVP_MD_CTX ready to sign/verify with SM3 under ``user_id``; caller frees both."""
    pctx = lib.EVP_PKEY_CTX_new(pkey, None)
    mctx = lib.EVP_MD_CTX_new()
    if not pctx or not mctx:
        lib.EVP_PKEY_CTX_free(pctx)
        lib.EVP_MD_CTX_free(mctx)
        raise _fail("libcrypto could not allocate an SM2 context")
    init = lib.EVP_DigestSignInit if sign else lib.EVP_DigestVerifyInit
    ok = lib.EVP_PKEY_CTX_set1_id(pctx, user_id, len(user_id)) == 1
    if ok:
        lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
        ok = init(mctx, None, lib.EVP_sm3(), None, pkey) == 1
    if not ok:
        lib.EVP_MD_CTX_free(mctx)
        lib.EVP_PKEY_CTX_free(pctx)
        lib.ERR_clear_error()
        raise _fail("libcrypto refused to set up SM2 with SM3 and the distinguishing id")
    return mctx, pctx


def sm2_verify(public_xy: bytes, signature_rs: bytes, message: bytes, *, user_id: bytes) -> bool:
    """True when ``signature_rs`` (r || s, big-endian) signs ``message`` under ``user_id``.

    A signature of the wrong shape or with r, s outside [1, n-1] is simply not valid (False);
    a key that is no curve point raises ``attest.sm2.bad_key``.
    """
    r, s = _split(signature_rs, "signature")
    if r == 0 or s == 0:
        return False
    key = _PublicKey(public_xy)
    lib = key._lib
    der_signature = encode_dss_signature(r, s)
    mctx, pctx = _digest_operation(lib, key.pointer or 0, user_id, sign=False)
    try:
        result = lib.EVP_DigestVerify(
            mctx, der_signature, len(der_signature), message, len(message)
        )
    finally:
        lib.EVP_MD_CTX_free(mctx)
        lib.EVP_PKEY_CTX_free(pctx)
        lib.ERR_clear_error()
    return bool(result == 1)


class Sm2PrivateKey:
    """A fresh SM2 key inside libcrypto (never exported): for constructed evidence and fakes."""

    def __init__(self, pointer: int) -> None:
        self._lib = _libcrypto()
        self._pointer: int | None = pointer
        self.public_xy = self._export_public()

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        lib = _libcrypto()
        ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        if not ctx:
            raise _fail("libcrypto cannot create SM2 keys")
        pkey = _c_void_p()
        try:
            if lib.EVP_PKEY_keygen_init(ctx) != 1 or lib.EVP_PKEY_generate(ctx, pkey) != 1:
                raise _fail("libcrypto failed to generate an SM2 key")
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
        assert pkey.value is not None
        return cls(pkey.value)

    def _export_public(self) -> bytes:
        buffer = _c_void_p()
        size = self._lib.i2d_PUBKEY(self._pointer, ctypes.byref(buffer))
        if size <= 0 or not buffer.value:
            raise _fail("libcrypto could not encode the SM2 public key")
        try:
            der = ctypes.string_at(buffer.value, size)
        finally:
            self._lib.CRYPTO_free(buffer.value, b"chronoseal", 0)
        if not der.startswith(_SPKI_PREFIX) or len(der) != len(_SPKI_PREFIX) + 64:
            raise _fail("libcrypto encoded an SM2 public key in an unexpected form")
        return der[len(_SPKI_PREFIX) :]

    def sign(self, message: bytes, *, user_id: bytes) -> bytes:
        """r || s (32 bytes each, big-endian) over SM3(Z(user_id, key) || message)."""
        lib = self._lib
        mctx, pctx = _digest_operation(lib, self._pointer or 0, user_id, sign=True)
        try:
            size = ctypes.c_size_t(0)
            if lib.EVP_DigestSign(mctx, None, ctypes.byref(size), message, len(message)) != 1:
                raise _fail("libcrypto failed to size an SM2 signature")
            out = ctypes.create_string_buffer(size.value)
            if lib.EVP_DigestSign(mctx, out, ctypes.byref(size), message, len(message)) != 1:
                raise _fail("libcrypto failed to sign with SM2")
            r, s = decode_dss_signature(out.raw[: size.value])
        finally:
            lib.EVP_MD_CTX_free(mctx)
            lib.EVP_PKEY_CTX_free(pctx)
            lib.ERR_clear_error()
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def __del__(self) -> None:
        if getattr(self, "_pointer", None):
            self._lib.EVP_PKEY_free(self._pointer)
            self._pointer = None
