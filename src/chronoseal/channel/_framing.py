"""AEAD framing of one stream: header, numbered data frames, one final frame.

Wire format (all integers big-endian)::

    header = "CSS1" ‖ u8 kem ‖ lp16(task id) ‖ lp16(party) ‖ lp16(stream id) ‖ lp16(hpke enc)
    frame  = u8 flags (0 data, 1 final) ‖ u64 index ‖ u32 len ‖ AES-256-GCM(ciphertext ‖ tag)

The 32-byte stream key arrives HPKE-sealed in the header. HKDF-SHA256 turns it into the
AES-256-GCM key and a 12-byte base IV (suite ``standard``); under the GM/T suite (``gmt``, a
task's ``crypto = "gmt"``) HKDF-SM3 turns it into an SM4 key (SM4 is a 128-bit cipher) and
the base IV, frames are SM4-GCM (16-byte tag, GM/T 0002 with the GCM mode of NIST SP
800-38D, through ``cryptography``'s OpenSSL), the header's magic is ``CSG1`` and the AAD
label names SM4, so a stream of one suite never opens as the other. A frame's nonce is the
base IV XOR its index (as in TLS 1.3), so nonces never repeat under a key. The AAD is the
fixed-width, length-prefixed ``label ‖ task ‖ party ‖ stream ‖ u64 index ‖ u8 final``. The
opener authenticates with the index *it expects*, never the one on the wire, which only
serves to name the failure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final, Literal, get_args

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chronoseal.channel._wire import U8, U32, U64, ByteSource, lp16, read_exact, read_exact_into
from chronoseal.errors import StreamIntegrityError

Suite = Literal["standard", "gmt"]
"""``standard``: AES-256-GCM, SHA-256. ``gmt``: SM4-GCM, SM3 (GM/T 0002, 0004)."""
SUITES: Final[tuple[str, ...]] = get_args(Suite)
MAGIC = b"CSS1"
MAGIC_GMT = b"CSG1"
STREAM_KEY_LEN = 32
TAG_LEN = 16
FLAG_DATA = 0
FLAG_FINAL = 1
FRAME_HEAD_LEN = 1 + 8 + 4
MAX_INDEX = 2**63
_AAD_LABEL = b"chronoseal.channel.frame.v1"
_AAD_LABEL_GMT = b"chronoseal.channel.frame.sm4-gcm.v1"
_INFO_LABEL = b"chronoseal.channel.stream-key.v1"


@dataclass(frozen=True, slots=True)
class StreamContext:
    """What a stream belongs to; bound into the HPKE ``info`` and every frame's AAD.

    ``task_id`` is the task's on-chain identity (SHA-256 of its canonical spec), ``party``
    the data owner the stream speaks for, ``stream_id`` names the stream within the task
    (``"data"``, ``"model"``...). Each encodes to at most 65535 bytes.
    """

    task_id: bytes
    party: str
    stream_id: str

    def encoded(self) -> bytes:
        """``lp16(task) ‖ lp16(party) ‖ lp16(stream)``, the prefix of every binding."""
        return (
            lp16(self.task_id)
            + lp16(self.party.encode("utf-8"))
            + lp16(self.stream_id.encode("utf-8"))
        )

    def hpke_info(self) -> bytes:
        """HPKE ``info``: the sealed stream key opens only for this task, party and stream."""
        return _INFO_LABEL + self.encoded()


def new_stream_key() -> bytes:
    """A fresh 256-bit stream key from the OS CSPRNG."""
    return os.urandom(STREAM_KEY_LEN)


def magic_for(suite: Suite) -> bytes:
    """The stream header's magic: it names the suite, so a mismatch fails at the header."""
    return MAGIC_GMT if suite == "gmt" else MAGIC


def _derive(stream_key: bytes, label: bytes, length: int, suite: Suite = "standard") -> bytes:
    digest: hashes.HashAlgorithm = hashes.SM3() if suite == "gmt" else hashes.SHA256()
    return HKDF(digest, length, salt=None, info=label).derive(stream_key)


class Sm4Gcm:
    """SM4-GCM with AESGCM's calling convention (ciphertext ‖ 16-byte tag)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encrypt_into(
        self, nonce: bytes, data: bytes | memoryview, aad: bytes, out: memoryview
    ) -> None:
        encryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(aad)
        sealed = encryptor.update(data) + encryptor.finalize()
        out[: len(sealed)] = sealed
        out[len(sealed) : len(sealed) + TAG_LEN] = encryptor.tag

    def decrypt(self, nonce: bytes, data: bytes | memoryview, aad: bytes) -> bytes:
        if len(data) < TAG_LEN:
            raise InvalidTag
        body, tag = data[: len(data) - TAG_LEN], bytes(data[len(data) - TAG_LEN :])
        decryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(body) + decryptor.finalize()


class _FrameCipher:
    def __init__(self, stream_key: bytes, context: StreamContext, suite: Suite) -> None:
        self._aead: AESGCM | Sm4Gcm
        if suite == "gmt":
            self._aead = Sm4Gcm(_derive(stream_key, b"chronoseal.channel.sm4-key.v1", 16, suite))
            iv = _derive(stream_key, b"chronoseal.channel.sm4-iv.v1", 12, suite)
            label = _AAD_LABEL_GMT
        else:
            self._aead = AESGCM(_derive(stream_key, b"chronoseal.channel.aes-key.v1", 32))
            iv = _derive(stream_key, b"chronoseal.channel.iv.v1", 12)
            label = _AAD_LABEL
        self._iv = int.from_bytes(iv, "big")
        self._aad_prefix = label + context.encoded()

    def _nonce(self, index: int) -> bytes:
        return (self._iv ^ index).to_bytes(12, "big")

    def _aad(self, index: int, final: bool) -> bytes:
        return self._aad_prefix + U64.pack(index) + U8.pack(int(final))


class FrameBuffer:
    """A reusable bytearray for whole frames, lent to one stream at a time.

    Large streams would otherwise allocate (and page-fault in) a fresh megabyte per frame; a
    channel keeps one for sending and one for receiving, so consecutive streams reuse it.
    """

    def __init__(self) -> None:
        self.data = bytearray()

    def reserve(self, size: int, *, keep: int = 0, slack: int = 0) -> bytearray:
        """At least ``size`` bytes, the first ``keep`` of them carried over on growth (which
        adds ``slack`` bytes, so that small frames after a large one fit without another)."""
        if len(self.data) < size:
            grown = bytearray(size + slack)
            grown[:keep] = self.data[:keep]
            self.data = grown
        return self.data


def frame_size(chunk_len: int) -> int:
    """Bytes on the wire for a frame carrying ``chunk_len`` plaintext bytes."""
    return FRAME_HEAD_LEN + chunk_len + TAG_LEN


class FrameSealer(_FrameCipher):
    """Produces frames in order; refuses to go on after the final frame."""

    def __init__(
        self, stream_key: bytes, context: StreamContext, suite: Suite = "standard"
    ) -> None:
        super().__init__(stream_key, context, suite)
        self._index = 0
        self.finished = False

    def seal_into(self, out: memoryview, chunk: bytes | memoryview, *, final: bool = False) -> None:
        """Write the whole frame (13-byte head, then ciphertext and tag) into ``out``, which
        is exactly ``frame_size(len(chunk))`` bytes long."""
        if self.finished:
            raise StreamIntegrityError(
                "the stream already ended", id="channel.stream.write_after_final"
            )
        index = self._index
        size = len(chunk) + TAG_LEN
        out[:FRAME_HEAD_LEN] = U8.pack(int(final)) + U64.pack(index) + U32.pack(size)
        self._aead.encrypt_into(
            self._nonce(index), chunk, self._aad(index, final), out[FRAME_HEAD_LEN:]
        )
        self._index += 1
        self.finished = final


class FrameOpener(_FrameCipher):
    """Reads and authenticates frames strictly in order from a byte source."""

    def __init__(
        self,
        stream_key: bytes,
        context: StreamContext,
        *,
        max_chunk: int,
        buffer: FrameBuffer | None = None,
        suite: Suite = "standard",
    ) -> None:
        super().__init__(stream_key, context, suite)
        self._expected = 0
        self._max_chunk = max_chunk
        self._buffer = buffer if buffer is not None else FrameBuffer()

    def next_frame(self, source: ByteSource) -> tuple[bytes, bool]:
        """Return ``(plaintext, final)`` of the next frame, or raise."""
        head = read_exact(source, FRAME_HEAD_LEN)
        if head is None:
            raise StreamIntegrityError(
                f"the stream ended after {self._expected} frames without its final frame",
                id="channel.stream.truncated",
            )
        flags = head[0]
        index = int(U64.unpack(head[1:9])[0])
        length = int(U32.unpack(head[9:13])[0])
        self._check_header(flags, index, length)
        body = memoryview(self._buffer.reserve(length))[:length]
        if not read_exact_into(source, body):
            raise StreamIntegrityError(
                f"the stream ended inside frame {index}", id="channel.stream.truncated"
            )
        final = flags == FLAG_FINAL
        try:
            # The plaintext is fresh bytes (it is held until the stream authenticates); the
            # ciphertext buffer is reused by the next frame.
            plaintext = self._aead.decrypt(
                self._nonce(self._expected), body, self._aad(self._expected, final)
            )
        except InvalidTag as exc:
            raise StreamIntegrityError(
                f"frame {self._expected} failed authentication (tampered or foreign)",
                id="channel.stream.tampered",
            ) from exc
        self._expected += 1
        return plaintext, final

    def _check_header(self, flags: int, index: int, length: int) -> None:
        if flags not in (FLAG_DATA, FLAG_FINAL):
            raise StreamIntegrityError(
                f"frame {self._expected} has unknown flags {flags:#x}",
                id="channel.stream.tampered",
            )
        if index < self._expected:
            raise StreamIntegrityError(
                f"frame {index} arrived again after frame {self._expected - 1}",
                id="channel.stream.replayed",
            )
        if index > self._expected or index >= MAX_INDEX:
            raise StreamIntegrityError(
                f"frame {index} arrived where frame {self._expected} was expected",
                id="channel.stream.reordered",
            )
        if length > self._max_chunk + TAG_LEN:
            raise StreamIntegrityError(
                f"frame {index} claims {length} bytes; the limit is {self._max_chunk} + tag",
                id="channel.stream.oversized",
            )
        if length < TAG_LEN:
            raise StreamIntegrityError(
                f"frame {index} is shorter than its tag", id="channel.stream.tampered"
            )
