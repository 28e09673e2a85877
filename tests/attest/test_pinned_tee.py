"""Claim 4 for real: every component takes its attester from the TEE its task pins, through
the backend registry, and refuses at once where this host cannot produce that evidence — it
never falls back to the simulated TEE.

What this machine cannot exercise: a genuine TDX/SEV-SNP/SGX quote over *our* report data
(no TEE hardware). The runtime below runs on a fake configfs-tsm kernel that hands back a
real TDX quote (``../shared/vectors``): the report data the runtime wrote is the binding of
its TLS key, HPKE key and chain address, and since the quote carries other report data the
runtime refuses it before anything reaches the chain, exactly as it must.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from eth_account import Account
from test_configfs import _tdx_kernel

from chronoseal.analysis import AnalysisRuntime
from chronoseal.attest import GramineAttester, SimulatedAttester, TsmAttester, attester_for
from chronoseal.attest._csv_guest import CsvGuestAttester
from chronoseal.errors import AttestationError
from chronoseal.ledger import read_events
from chronoseal.node import DemoConsortium, bundled_scenario, load_scenario
from chronoseal.node._agents import serve_analysis
from chronoseal.spec import Component

TDX_DIGEST = hashlib.sha256(b"a tdx analysis runtime").hexdigest()


def test_the_simulated_pin_gives_the_simulated_attester() -> None:
    assert isinstance(attester_for("simulated", Component.GATEWAY), SimulatedAttester)


@pytest.mark.parametrize("tee", ["tdx", "sev-snp", "sgx"])
def test_a_tee_this_host_lacks_is_refused_with_what_is_missing(tee: str) -> None:
    if Path("/sys/kernel/config/tsm/report").exists() or Path("/dev/attestation").exists():
        pytest.skip("this host has a TEE device")
    with pytest.raises(AttestationError) as info:
        attester_for(tee, Component.ANALYSIS)
    assert info.value.id == "attest.tee.not_available"
    assert tee in info.value.message and info.value.context["device"].startswith("/")


@pytest.mark.parametrize("tee", ["csv", "cca"])
def test_csv_and_cca_pins_refuse_on_a_host_without_their_device(tee: str) -> None:
    with pytest.raises(AttestationError) as info:
        attester_for(tee, Component.ANALYSIS)
    assert info.value.id == "attest.tee.not_available"
    assert info.value.context["device"] in ("/dev/csv-guest", "/sys/kernel/config/tsm/report")


def test_the_registry_picks_the_vendor_attesters() -> None:
    from chronoseal.attest import get_backend

    assert isinstance(get_backend("tdx").attester(Component.ANALYSIS), TsmAttester)
    assert isinstance(get_backend("sev-snp").attester(Component.ANALYSIS), TsmAttester)
    assert isinstance(get_backend("sgx").attester(Component.ANALYSIS), GramineAttester)
    assert isinstance(get_backend("cca").attester(Component.ANALYSIS), TsmAttester)
    assert isinstance(get_backend("csv").attester(Component.ANALYSIS), CsvGuestAttester)


def _tdx_scenario(tmp_path: Path) -> Path:
    root = tmp_path / "chicago"
    shutil.copytree(bundled_scenario().parent, root)
    task = root / "task.toml"
    task.write_text(
        task.read_text().replace(
            'analysis = { tee = "simulated", value = "installed" }',
            f'analysis = {{ tee = "tdx", value = "{TDX_DIGEST}" }}',
        )
    )
    return root / "scenario.toml"


def test_serve_refuses_before_touching_the_chain_on_a_host_without_the_pinned_tee(
    tmp_path: Path,
) -> None:
    if Path("/sys/kernel/config/tsm/report").exists():
        pytest.skip("this host has configfs-tsm")
    with pytest.raises(AttestationError) as info:
        serve_analysis(
            spec_path=_tdx_scenario(tmp_path).parent / "task.toml",
            chain_url="http://127.0.0.1:9",  # never contacted
            contract="0x" + "00" * 20,
            key_path=tmp_path / "no-key.json",
            listen=("127.0.0.1", 0),
            timeout=1,
            log=lambda _: None,
        )
    assert info.value.id == "attest.tee.not_available"


def test_a_tdx_pinned_runtime_attests_through_configfs_tsm(tmp_path: Path) -> None:
    """The runtime asks the (fake) TDX kernel for a quote over its own binding; the quote that
    comes back carries other report data, and the runtime refuses to use it: nothing is
    posted on chain, no gateway ever sees it."""
    world = DemoConsortium(load_scenario(_tdx_scenario(tmp_path)), lambda _: None)
    world.propose()
    world.review_and_approve(world.spec, world.task_id)
    kernel, vector_report_data = _tdx_kernel(tmp_path)
    attester = TsmAttester("tdx", Component.ANALYSIS, root=kernel.root, fs=kernel)
    key = Account.create()
    world.chain.fund(key.address, 10**20)
    runtime = AnalysisRuntime(world.consortium, world.spec, attester=attester, chain_key=key.key)
    with pytest.raises(AttestationError) as info:
        runtime.start()
    assert info.value.id == "attest.configfs.report_data_mismatch"
    (inblob,) = kernel.inblobs  # the runtime's own 64-byte binding went to the kernel
    assert len(inblob) == 64 and inblob != vector_report_data
    assert not [e for e in read_events(world.consortium) if e.name == "AttestationPosted"]
