"""A Hygon secure-processor fake behind ``/dev/csv-guest``'s CSV_GET_REPORT.

It checks the request the way the firmware does (SM3 of REPORT_DATA || MNONCE), then writes
a V1 report over *that* request into the page: masked with a fresh ANONCE, signed by the
platform's PEK (libcrypto SM2), the signer block MAC'd with the guest's MNONCE.
"""

from __future__ import annotations

import errno
import secrets

from cryptography.hazmat.primitives import hashes
from csv_builder import POLICY_PRODUCTION, CsvPlatform


class FakeCsvFirmware:
    def __init__(self, platform: CsvPlatform, *, policy: int = POLICY_PRODUCTION) -> None:
        self.platform = platform
        self.policy = policy
        self.requests: list[bytes] = []
        self.measure = b"\x11" * 32

    def get_report(self, page: bytearray) -> None:
        if len(page) != 4096:
            raise OSError(errno.EINVAL, "Invalid argument")
        report_data, mnonce, digest = bytes(page[:64]), bytes(page[64:80]), bytes(page[80:112])
        sm3 = hashes.Hash(hashes.SM3())
        sm3.update(report_data + mnonce)
        if sm3.finalize() != digest:
            raise OSError(errno.EINVAL, "Invalid argument")
        self.requests.append(report_data)
        page[:] = self.platform.report_v1(
            report_data,
            measure=self.measure,
            policy=self.policy,
            anonce=secrets.token_bytes(4),
            mnonce=mnonce,
            masked_signer=True,
        )
