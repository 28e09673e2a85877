"""The committed ABI and bytecode are exactly what vyper 0.4.3 makes of the shipped source."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chronoseal.errors import ContractArtifactError
from chronoseal.ledger import _artifacts, _build, _validators
from chronoseal.ledger._artifacts import load_artifact

MAX_RUNTIME_BYTES = 24_576  # EIP-170


def test_committed_artifact_matches_a_fresh_compile() -> None:
    for name in _build.CONTRACT_NAMES:
        committed = (_build.ARTIFACTS_DIR / f"{name}.json").read_text(encoding="utf-8")
        fresh = _build.compile_contract(name)
        # creation and runtime bytecode (metadata trailer included) are compared byte for byte
        assert json.loads(committed) == fresh
        assert committed == _build.render(fresh)


def test_the_london_build_is_the_same_source_for_the_members_clique_chain() -> None:
    for name in _build.CONTRACT_NAMES:
        for evm in _build.EVM_VARIANTS:
            path = _build.ARTIFACTS_DIR / _build.artifact_file(name, evm)
            fresh = _build.compile_contract(name, evm)
            assert path.read_text(encoding="utf-8") == _build.render(fresh)
            default, variant = load_artifact(name), load_artifact(name, evm)
            assert variant.abi == default.abi and variant.source_sha256 == default.source_sha256
            assert variant.bytecode != default.bytecode  # no PUSH0 (Shanghai) in London
            size = (len(variant.bytecode_runtime) - 2) // 2
            assert size < _validators.MAX_CODE_SIZE  # the limit the validators run with


def test_runtime_code_fits_the_contract_size_limit() -> None:
    artifact = load_artifact()
    assert (len(artifact.bytecode_runtime) - 2) // 2 < MAX_RUNTIME_BYTES


def test_runtime_package_does_not_import_vyper() -> None:
    code = "import sys, chronoseal.ledger; assert 'vyper' not in sys.modules, 'vyper imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_source_edited_after_the_build_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "ledger"
    shutil.copytree(_build.ARTIFACTS_DIR, package / "artifacts")
    shutil.copytree(_build.CONTRACTS_DIR, package / "contracts")
    source = package / "contracts" / "Consortium.vy"
    source.write_text(source.read_text() + "\n# edited\n")
    monkeypatch.setattr(_artifacts.resources, "files", lambda _name: package)
    with pytest.raises(ContractArtifactError) as info:
        _artifacts.load_artifact()
    assert info.value.id == "ledger.artifact.stale"
