"""Load the committed ABI and bytecode, refusing them if the Vyper source changed since."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from chronoseal.errors import ContractArtifactError


@dataclass(frozen=True)
class ContractArtifact:
    """A compiled contract as committed under ``chronoseal/ledger/artifacts``."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    bytecode_runtime: str
    vyper_version: str
    source_sha256: str


def load_artifact(name: str = "Consortium", evm_version: str | None = None) -> ContractArtifact:
    """Read ``artifacts/<name>.json`` (``<name>.<evm_version>.json`` for a chain whose forks
    stop earlier) and check it was built from the shipped source.

    A stale artifact would deploy code nobody reviewed, so a hash mismatch is an error,
    not a warning.
    """
    package = resources.files("chronoseal.ledger")
    file = f"{name}.json" if evm_version is None else f"{name}.{evm_version}.json"
    try:
        raw = (package / "artifacts" / file).read_text(encoding="utf-8")
        source = (package / "contracts" / f"{name}.vy").read_bytes()
        data = json.loads(raw)
        artifact = ContractArtifact(
            name=str(data["contract_name"]),
            abi=list(data["abi"]),
            bytecode=str(data["bytecode"]),
            bytecode_runtime=str(data["bytecode_runtime"]),
            vyper_version=str(data["vyper_version"]),
            source_sha256=str(data["source_sha256"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ContractArtifactError(
            f"cannot read the compiled artifact for {name}: {exc}; "
            "run `python -m chronoseal.ledger._build`"
        ) from exc
    actual = hashlib.sha256(source).hexdigest()
    if actual != artifact.source_sha256:
        raise ContractArtifactError(
            f"artifacts/{file} was built from another source (sha256 "
            f"{artifact.source_sha256[:12]}…, source is {actual[:12]}…); "
            "run `python -m chronoseal.ledger._build`",
            id="ledger.artifact.stale",
        )
    return artifact
