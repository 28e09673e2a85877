"""Regenerate the committed contract artifacts from the Vyper sources.

Run ``python -m chronoseal.ledger._build`` (needs the ``test`` extra, which brings vyper
0.4.3). The runtime package never imports this module: it only reads the JSON it writes,
so production installs do not need a compiler.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).parent / "contracts"
ARTIFACTS_DIR = Path(__file__).parent / "artifacts"
CONTRACT_NAMES = ("Consortium",)
VYPER_VERSION = "0.4.3"
SOURCE_EVM = "shanghai"
# Extra targets: the same source for chains whose forks stop earlier. The members' Clique
# validators (EthereumJS) run London: Shanghai and later imply the merge there.
EVM_VARIANTS = ("london",)


def artifact_file(name: str, evm_version: str | None = None) -> str:
    return f"{name}.json" if evm_version is None else f"{name}.{evm_version}.json"


def compile_contract(name: str, evm_version: str | None = None) -> dict[str, Any]:
    """Compile one contract; the result is what ``artifacts/<name>[.<evm>].json`` must hold.

    The full creation and runtime bytecode (including Vyper's CBOR metadata trailer) is
    deterministic for a given source and compiler version, so the artifact test compares
    both byte for byte. ``evm_version`` rewrites the source's evm-version pragma only.
    """
    import vyper  # type: ignore[import-untyped]  # test-only: the runtime never imports it

    if not vyper.__version__.startswith(VYPER_VERSION):
        raise RuntimeError(f"vyper {VYPER_VERSION} is required, found {vyper.__version__}")
    source = (CONTRACTS_DIR / f"{name}.vy").read_text(encoding="utf-8")
    compiled = source
    if evm_version is not None:
        pragma = f"#pragma evm-version {SOURCE_EVM}"
        if pragma not in source:
            raise RuntimeError(f"{name}.vy has no `{pragma}` line to retarget")
        compiled = source.replace(pragma, f"#pragma evm-version {evm_version}")
    with warnings.catch_warnings():
        if evm_version is not None:  # over EIP-170: the members' chain raises the limit
            warnings.filterwarnings("ignore", category=vyper.warnings.ContractSizeLimit)
        out = vyper.compile_code(
            compiled,
            contract_path=f"{name}.vy",
            output_formats=["abi", "bytecode", "bytecode_runtime"],
        )
    artifact = {
        "contract_name": name,
        "vyper_version": VYPER_VERSION,
        "source_sha256": hashlib.sha256(source.encode("utf-8")).hexdigest(),
        "abi": out["abi"],
        "bytecode": out["bytecode"],
        "bytecode_runtime": out["bytecode_runtime"],
    }
    if evm_version is not None:
        artifact["evm_version"] = evm_version
    return artifact


def render(artifact: dict[str, Any]) -> str:
    """Serialise an artifact the one way the committed files are written."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def main() -> None:
    """Rewrite every artifact file next to the sources."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    for name in CONTRACT_NAMES:
        for evm in (None, *EVM_VARIANTS):
            artifact = compile_contract(name, evm)
            target = artifact_file(name, evm)
            (ARTIFACTS_DIR / target).write_text(render(artifact), encoding="utf-8")
            size = (len(artifact["bytecode_runtime"]) - 2) // 2
            print(f"{name}: runtime {size} bytes -> artifacts/{target}")


if __name__ == "__main__":
    main()
