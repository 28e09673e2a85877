"""The prediction runtime's state on an untrusted disk, sealed (AES-256-GCM under a key only
its TEE derives, see :func:`chronoseal.attest.sealing_key`), so a restarted runtime takes
the model over again without the analysis runtime, and no audit leaf is silently lost.

Each value is one file, rewritten atomically; the audit journal is one file of records
appended one by one. The AAD of every record names the task, the file and (for journal
records) the record's position, so a host cannot swap files between tasks, reorder records
or splice two journals: any of that fails ``prediction.sealed.tampered``. What a host *can*
do is delete the journal's tail — a TEE without a monotonic counter cannot tell — but every
leaf already in a posted batch is anchored on chain and re-checked against its root there,
so only leaves never posted can disappear, and a restart reports how many it found.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chronoseal.errors import ChronosealError

_NONCE = 12
_TAG = 16
_MAGIC = b"chronoseal-sealed-v1"
#: A journal record is one audit leaf (well under a kilobyte); a length beyond this, or too
#: short to hold a nonce and a tag, is a damaged prefix, not a write a crash cut short.
MAX_RECORD = 1 << 20


class SealedStateError(ChronosealError):
    """Sealed state that does not open: tampered with, or sealed by another TEE or task."""

    default_id = "prediction.sealed.tampered"


class SealedStore:
    """Values and an append-only journal in ``directory``, sealed under ``key``."""

    def __init__(self, directory: Path, key: bytes, task_id: bytes) -> None:
        self.directory = directory
        self._aead = AESGCM(key)
        self._task = task_id
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._counts: dict[str, int] = {}

    def _aad(self, name: str, index: int | None = None) -> bytes:
        where = b"" if index is None else struct.pack(">Q", index)
        return _MAGIC + self._task + name.encode() + b"\x00" + where

    def _path(self, name: str) -> Path:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"not a sealed-state name: {name!r}")
        return self.directory / f"{name}.sealed"

    def _not_a_file(self, name: str) -> SealedStateError:
        return SealedStateError(
            f"{self._path(name)} is a directory, not sealed state: the host replaced it",
            id="prediction.sealed.not_a_file",
        )

    def put(self, name: str, data: bytes) -> None:
        """Seal ``data`` as ``name``, replacing it atomically (never half written)."""
        nonce = os.urandom(_NONCE)
        blob = nonce + self._aead.encrypt(nonce, data, self._aad(name))
        path = self._path(name)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)

    def get(self, name: str) -> bytes | None:
        """The value sealed as ``name``; None if there is none."""
        try:
            blob = self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise self._not_a_file(name) from None
        try:
            return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], self._aad(name))
        except (InvalidTag, ValueError):
            raise SealedStateError(
                f"sealed {name!r} in {self.directory} does not open: tampered with, or sealed "
                "by another TEE, code version or task"
            ) from None

    def append(self, name: str, record: bytes) -> None:
        """Append one record to journal ``name`` (written and synced before returning)."""
        if name not in self._counts:
            records, end = self._scan(name)
            path = self._path(name)
            if path.exists() and path.stat().st_size > end:
                os.truncate(path, end)  # drop a record a crash cut short, then append
            self._counts[name] = len(records)
        index = self._counts[name]
        nonce = os.urandom(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, record, self._aad(name, index))
        with open(self._path(name), "ab") as out:
            out.write(struct.pack(">I", len(sealed)) + sealed)
            out.flush()
            os.fsync(out.fileno())
        self._counts[name] = index + 1

    def records(self, name: str) -> list[bytes]:
        """Every record of journal ``name`` in order. A record cut short by a crash while it
        was written is the last one and is dropped; any other damage is refused."""
        return self._scan(name)[0]

    def _scan(self, name: str) -> tuple[list[bytes], int]:
        try:
            raw = self._path(name).read_bytes()
        except FileNotFoundError:
            return [], 0
        except IsADirectoryError:
            raise self._not_a_file(name) from None
        out: list[bytes] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                break  # a length cut short: the write that crashed
            (size,) = struct.unpack(">I", raw[pos : pos + 4])
            if not _NONCE + _TAG <= size <= MAX_RECORD:
                raise SealedStateError(
                    f"record {len(out)} of the sealed journal {name!r} has a length of {size} "
                    "bytes, which no sealed record has: the journal was tampered with"
                )
            if pos + 4 + size > len(raw):
                break
            sealed = raw[pos + 4 : pos + 4 + size]
            try:
                out.append(
                    self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._aad(name, len(out)))
                )
            except (InvalidTag, ValueError):
                raise SealedStateError(
                    f"record {len(out)} of the sealed journal {name!r} does not open: the "
                    "journal was tampered with or reordered"
                ) from None
            pos += 4 + size
        return out, pos
