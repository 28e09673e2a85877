"""Sealing: a key only this component's code on this platform can derive, so state it
writes to an untrusted disk (the model it serves, its audit journal) survives a restart
without ever being readable outside the TEE.

* SGX under Gramine: Gramine exposes the enclave's MRENCLAVE-bound SGX seal key as
  ``/dev/attestation/keys/_sgx_mrenclave`` (EGETKEY, bound to this enclave on this CPU). A
  subkey is derived per purpose (HKDF), never the raw key, as Gramine asks of keys also used
  for encrypted mounts.
* Simulated TEE: there is no hardware key. The key is derived from the component's own chain
  key (held in its encrypted keystore) and its measurement: whoever holds the keystore and
  its passphrase can unseal — exactly as much protection as the simulated TEE gives at all.
* TDX and SEV-SNP have no sealing key a guest can use this way (SNP's derived keys need the
  ``/dev/sev-guest`` ioctl, TDX needs a key broker): refused with a clear id, never faked.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chronoseal.errors import UnsupportedTee

GRAMINE_SEAL_KEY = Path("/dev/attestation/keys/_sgx_mrenclave")
_INFO = b"chronoseal-seal-v1|"


def sealing_key(
    tee: str,
    *,
    component_key: bytes,
    measurement: bytes,
    purpose: bytes,
    gramine_key: Path = GRAMINE_SEAL_KEY,
) -> bytes:
    """A 32-byte AES key for ``purpose`` (e.g. the task id), bound to the TEE's sealing
    identity; see the module docstring for what each TEE binds it to."""
    if tee == "simulated":
        ikm = component_key
    elif tee == "sgx":
        try:
            ikm = gramine_key.read_bytes()
        except OSError as exc:
            raise UnsupportedTee(
                f"no SGX seal key at {gramine_key} ({exc.strerror}): sealing needs the "
                "component to run under Gramine in an SGX enclave",
                id="attest.sealing.unavailable",
            ) from None
        if len(ikm) < 16:
            raise UnsupportedTee(
                f"{gramine_key} holds {len(ikm)} bytes, not an SGX seal key",
                id="attest.sealing.unavailable",
            )
    else:
        raise UnsupportedTee(
            f"sealing on {tee} is not supported: a {tee} guest has no sealing key of its own "
            "(a key broker releasing one after attestation is the way)",
            id="attest.sealing.unsupported",
        )
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=measurement, info=_INFO + purpose)
    return hkdf.derive(ikm)
