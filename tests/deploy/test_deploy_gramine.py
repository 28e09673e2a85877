"""`render_gramine`: manifest templates that ``gramine-manifest`` can render into TOML with
the keys an SGX enclave with DCAP attestation needs, and nothing secret left unsealed."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from chronoseal.deploy import DeployInput, render_gramine
from chronoseal.errors import DeployError

Loader = Callable[[Path], DeployInput]
RUNTIME_DIR = Path("/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc")
LIBOS = Path("/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so")
ARCH_LIBDIR = "/lib/x86_64-linux-gnu"


def _sys_path(interpreter: Path) -> Iterator[Path]:
    """What Gramine's ``python.get_sys_path`` yields: the interpreter's existing sys.path."""
    assert interpreter == Path(sys.executable)
    return (Path(p) for p in sys.path if p and Path(p).exists())


def gramine_manifest(template: str) -> dict[str, Any]:
    """Render like ``gramine-manifest -Dentrypoint=... -Darch_libdir=...`` (same Jinja
    settings: StrictUndefined, no autoescape), then parse the TOML."""
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    env.globals["gramine"] = {"libos": LIBOS, "runtimedir": lambda libc="glibc": RUNTIME_DIR}
    env.globals["python"] = {"get_sys_path": _sys_path}
    text = env.from_string(template).render(
        entrypoint=Path(sys.executable), arch_libdir=ARCH_LIBDIR
    )
    return tomllib.loads(text)


@pytest.fixture
def sgx_everywhere(make_scenario: Callable[..., Path], load_input: Loader) -> DeployInput:
    return load_input(make_scenario(gateway="sgx", analysis="sgx", prediction="sgx"))


def test_one_template_per_sgx_component(
    make_scenario: Callable[..., Path], load_input: Loader
) -> None:
    rendered = render_gramine(load_input(make_scenario(gateway="sgx", analysis="tdx")))
    assert sorted(rendered.files) == ["README.txt", "gateway.manifest.template"]
    assert any("analysis" in w and "tdx" in w for w in rendered.warnings)


def test_one_gateway_template_serves_every_party(sgx_everywhere: DeployInput) -> None:
    template = render_gramine(sgx_everywhere).files["gateway.manifest.template"]
    # a party-specific value would give each party's gateway its own MRENCLAVE
    for party in ("transit", "weather", "events"):
        assert party not in template.split("# The same template")[1]


@pytest.mark.parametrize("component", ["gateway", "analysis", "prediction"])
def test_the_manifest_has_the_keys_of_an_sgx_enclave_with_dcap(
    component: str, sgx_everywhere: DeployInput
) -> None:
    manifest = gramine_manifest(
        render_gramine(sgx_everywhere).files[f"{component}.manifest.template"]
    )
    sgx = manifest["sgx"]
    assert sgx["remote_attestation"] == "dcap"
    assert sgx["debug"] is False
    assert sgx["enclave_size"].endswith("G") and sgx["max_threads"] >= 16
    assert manifest["loader"]["entrypoint"]["uri"] == f"file:{LIBOS}"
    assert manifest["libos"]["entrypoint"] == sys.executable
    argv = manifest["loader"]["argv"]
    assert argv[1:3] == ["-m", "chronoseal"]
    assert {"--spec", "--key-file"} <= set(argv)
    env = manifest["loader"]["env"]
    assert env["CHRONOSEAL_CHAIN_URL"] == {"passthrough": True}
    assert env["CHRONOSEAL_CONTRACT"] == {"passthrough": True}
    assert "LD_LIBRARY_PATH" in env
    trusted = sgx["trusted_files"]
    assert f"file:{sys.executable}" in trusted
    assert f"file:{RUNTIME_DIR}/" in trusted
    # the installed chronoseal package is measured: its sys.path entry is a trusted directory
    import chronoseal

    package_root = Path(chronoseal.__file__).resolve().parents[1]
    assert f"file:{package_root}/" in trusted
    mounts = {m["path"]: m for m in manifest["fs"]["mounts"]}
    assert mounts[str(package_root)]["uri"] == f"file:{package_root}"


@pytest.mark.parametrize("component", ["gateway", "analysis", "prediction"])
def test_keys_and_state_are_sealed_never_allowed_files(
    component: str, sgx_everywhere: DeployInput
) -> None:
    manifest = gramine_manifest(
        render_gramine(sgx_everywhere).files[f"{component}.manifest.template"]
    )
    mounts = {m["path"]: m for m in manifest["fs"]["mounts"]}
    keystore = mounts["/var/run/secrets/chronoseal/keystore"]
    assert keystore["type"] == "encrypted" and not keystore["key_name"].startswith("_")
    assert manifest["loader"]["env"]["SECRET_PROVISION_SET_KEY"] == keystore["key_name"]
    assert mounts["/var/lib/chronoseal"] == {
        "type": "encrypted",
        "path": "/var/lib/chronoseal",
        "uri": "file:/var/lib/chronoseal",
        "key_name": "_sgx_mrenclave",
    }
    allowed = manifest["sgx"]["allowed_files"]
    assert allowed == ["file:/srv/chronoseal/"]
    for uri in allowed + manifest["sgx"]["trusted_files"]:
        assert "keystore" not in uri and "/var/lib/chronoseal" not in uri
    assert "insecure__keys" not in manifest.get("fs", {})


def test_a_task_without_sgx_pins_is_refused_for_gramine(
    make_scenario: Callable[..., Path], load_input: Loader
) -> None:
    with pytest.raises(DeployError) as caught:
        render_gramine(load_input(make_scenario(analysis="tdx", prediction="sev-snp")))
    assert caught.value.id == "deploy.gramine.no_sgx_component"
    assert "--target k8s" in caught.value.message
