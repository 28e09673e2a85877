"""Constructed Hygon CSV certificates and reports, signed with SM2 through libcrypto.

No Hygon private key is public, so every chain link that the real vectors cannot cover (a
full HRK -> report chain for one chip, V2 reports, bound report data, a debug guest) is built
here the way the firmware lays it out (csv-rs's structs) and signed with fresh SM2 keys.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from chronoseal.attest._csv import (
    ALGO_SM2_SA,
    EXT_MAGIC,
    USAGE_CEK,
    USAGE_HRK,
    USAGE_HSK,
    USAGE_OCA,
    USAGE_PEK,
    USER_IDS,
    csv_report_wrapper,
)
from chronoseal.attest._sm2 import Sm2PrivateKey

POLICY_PRODUCTION = 0x4D  # nodbg, es, nosend, csv3
SERIAL = b"CONSTRUCTED0001"


def le72(value: bytes) -> bytes:
    return value[::-1] + bytes(40)


def signature_fields(rs: bytes) -> bytes:
    return le72(rs[:32]) + le72(rs[32:])


def pubkey_fields(key: Sm2PrivateKey) -> bytes:
    return struct.pack("<I", 3) + le72(key.public_xy[:32]) + le72(key.public_xy[32:])


def user_id_fields(user_id: bytes) -> bytes:
    return struct.pack("<H", len(user_id)) + user_id.ljust(254, b"\x00")


def ca_certificate(
    key: Sm2PrivateKey,
    usage: int,
    kid: bytes,
    sid: bytes,
    signer: Sm2PrivateKey,
    signer_uid: bytes,
    *,
    user_id: bytes | None = None,
) -> bytes:
    body = (
        struct.pack("<I", 1)
        + kid
        + sid
        + struct.pack("<I", usage)
        + bytes(24)
        + pubkey_fields(key)
        + user_id_fields(USER_IDS[usage] if user_id is None else user_id)
        + bytes(108)
    )
    assert len(body) == 576
    return body + signature_fields(signer.sign(body, user_id=signer_uid)) + bytes(112)


def csv_certificate(
    key: Sm2PrivateKey,
    usage: int,
    sid: bytes,
    signers: list[tuple[int, Sm2PrivateKey, bytes]],
    *,
    firmware: tuple[int, int] = (1, 3),
) -> bytes:
    body = (
        struct.pack("<I", 1)
        + bytes(firmware)
        + bytes(2)
        + struct.pack("<II", usage, ALGO_SM2_SA)
        + pubkey_fields(key)
        + user_id_fields(USER_IDS[usage])
        + sid
        + bytes(608)
    )
    assert len(body) == 1044
    slots = b""
    for signer_usage, signer, signer_uid in signers:
        rs = signer.sign(body, user_id=signer_uid)
        slots += struct.pack("<II", signer_usage, ALGO_SM2_SA) + signature_fields(rs) + bytes(368)
    slots += (struct.pack("<II", 0x1000, 0) + bytes(512)) * (2 - len(signers))
    return body + slots


@dataclass
class CsvPlatform:
    """A constructed Hygon platform: root, HSK, one chip's CEK and PEK, all real SM2 keys."""

    hrk_key: Sm2PrivateKey = field(default_factory=Sm2PrivateKey.generate)
    hsk_key: Sm2PrivateKey = field(default_factory=Sm2PrivateKey.generate)
    cek_key: Sm2PrivateKey = field(default_factory=Sm2PrivateKey.generate)
    pek_key: Sm2PrivateKey = field(default_factory=Sm2PrivateKey.generate)
    hrk_id: bytes = b"R" * 16
    hsk_id: bytes = b"S" * 16

    @functools.cached_property
    def hrk(self) -> bytes:
        uid = USER_IDS[USAGE_HRK]
        return ca_certificate(self.hrk_key, USAGE_HRK, self.hrk_id, self.hrk_id, self.hrk_key, uid)

    @functools.cached_property
    def hsk(self) -> bytes:
        return ca_certificate(
            self.hsk_key, USAGE_HSK, self.hsk_id, self.hrk_id, self.hrk_key, USER_IDS[USAGE_HRK]
        )

    @functools.cached_property
    def cek(self) -> bytes:
        return csv_certificate(
            self.cek_key,
            USAGE_CEK,
            self.hsk_id,
            [(USAGE_HSK, self.hsk_key, USER_IDS[USAGE_HSK])],
        )

    @property
    def hsk_cek(self) -> bytes:
        return self.hsk + self.cek

    def pek(self, cek_uid: bytes | None = None) -> bytes:
        oca = Sm2PrivateKey.generate()
        return csv_certificate(
            self.pek_key,
            USAGE_PEK,
            bytes(16),
            [
                (USAGE_CEK, self.cek_key, USER_IDS[USAGE_CEK] if cek_uid is None else cek_uid),
                (USAGE_OCA, oca, USER_IDS[USAGE_OCA]),
            ],
        )

    def report_v1(
        self,
        report_data: bytes,
        *,
        measure: bytes = b"\x11" * 32,
        policy: int = POLICY_PRODUCTION,
        anonce: bytes = b"\x5a\xc3\x0f\x96",
        mnonce: bytes = b"\x07" * 16,
        pek_uid: bytes | None = None,
        masked_signer: bool = False,
    ) -> bytes:
        """The 4,096-byte V1 page; restored (as verified) or masked (as the firmware writes)."""

        def mask(data: bytes) -> bytes:
            return bytes(byte ^ anonce[i % 4] for i, byte in enumerate(data))

        signed = mask(
            bytes(32)
            + b"\x01" * 16
            + b"\x02" * 16
            + report_data
            + mnonce
            + measure
            + struct.pack("<I", policy)
        )
        usage_algo = mask(struct.pack("<II", USAGE_PEK, ALGO_SM2_SA))
        rs = self.pek_key.sign(signed, user_id=USER_IDS[USAGE_PEK] if pek_uid is None else pek_uid)
        tee_info = signed + usage_algo + anonce + signature_fields(rs)
        assert len(tee_info) == 0x150
        pek, serial, reserved = self.pek(), SERIAL.ljust(64, b"\x00"), b"\xee" * 32
        masked = mask(pek) + mask(serial) + reserved
        mac = crypto_hmac.HMAC(mnonce, hashes.SM3())
        mac.update(masked)
        if masked_signer:
            signer = masked + mac.finalize()
        else:
            signer = pek + serial + bytes(32) + mac.finalize()
        page = tee_info + signer
        return page + bytes(4096 - len(page))

    def report_v2(
        self,
        report_data: bytes,
        *,
        measure: bytes = b"\x11" * 32,
        policy: int = POLICY_PRODUCTION,
        rtmrs: tuple[bytes, ...] = tuple(bytes([i]) * 32 for i in range(1, 6)),
    ) -> bytes:
        """A V2 (ATTESTATION_EXT) report wrapper: 1,024 signed bytes with RTMR0..4, unmasked."""
        signed = (
            bytes(32)
            + b"\x01" * 16
            + b"\x02" * 16
            + report_data
            + b"\x07" * 16
            + measure
            + struct.pack("<IIII", policy, USAGE_PEK, ALGO_SM2_SA, 2300)
            + struct.pack("<H", 1)
            + bytes(14)
            + b"".join(rtmrs)
        )
        signed += bytes(1024 - len(signed))
        rs = self.pek_key.sign(signed, user_id=USER_IDS[USAGE_PEK])
        page = signed + signature_fields(rs) + self.pek() + SERIAL.ljust(64, b"\x00") + bytes(64)
        return csv_report_wrapper(page + bytes(4096 - len(page)), magic=EXT_MAGIC, flags=1)
