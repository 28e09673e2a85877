"""Gramine manifest templates (``<component>.manifest.template``) for SGX components.

The templates are Jinja, as ``gramine-manifest`` renders them (Gramine's own
``CI-Examples/python``): ``{{ entrypoint }}`` (the Python interpreter), ``{{ arch_libdir }}``,
``gramine.libos``, ``gramine.runtimedir()`` and ``python.get_sys_path()`` come from Gramine.

What goes into MRENCLAVE, and what does not:

* measured (``sgx.trusted_files``, ``loader.argv``): the interpreter, Gramine's runtime, the
  system libraries and every ``sys.path`` entry -- the installed chronoseal package and its
  locked dependencies -- and the command line. That is the code every party pins.
* not measured: the task spec (the task pins the enclave's own measurement, so hashing the
  spec into MRENCLAVE would be circular; the component checks the spec against its hash on
  chain, the task id, before using it), a party's config and data (the party's own, read in
  its own domain; one gateway measurement serves every party), and the deployment's chain
  URL, contract, party name and peers (environment variables, each checked against the chain).
* sealed (``type = "encrypted"`` mounts): the state directory, with the enclave's MRENCLAVE
  sealing key, and the keystore, with a key Gramine's Secret Provisioning delivers only after
  the enclave attested. Keys are never allowed files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from chronoseal.errors import DeployError

from . import _layout as L
from ._plan import Kind, Plan

#: ``sgx.enclave_size`` (no EDMM: committed at start, so it is also the EPC the pod requests).
ENCLAVE_SIZE: Final[Mapping[Kind, str]] = {
    Kind.GATEWAY: "2G",
    Kind.ANALYSIS: "8G",
    Kind.PREDICTION: "4G",
}
#: ``sgx.max_threads``: TLS server threads, LightGBM/OpenMP workers, Gramine's helpers.
MAX_THREADS: Final = 64
#: ``sgx.isvprodid`` per component, so a pin on MRSIGNER + ISVPRODID tells them apart.
ISV_PROD_ID: Final[Mapping[Kind, int]] = {Kind.GATEWAY: 1, Kind.ANALYSIS: 2, Kind.PREDICTION: 3}
#: The encrypted-files key Gramine's Secret Provisioning sets for the keystore mount.
KEYSTORE_KEY_NAME: Final = "chronoseal_keystore"
SECRET_PROV_CA: Final = f"{L.SECRET_PROV_DIR}/ca.crt"

_CLI: Final[Mapping[Kind, list[str]]] = {
    Kind.GATEWAY: [
        "gateway",
        "serve",
        "--config",
        f"{L.PARTY_DIR}/{L.PARTY_FILE}",
        "--state-dir",
        L.STATE_DIR,
    ],
    Kind.ANALYSIS: ["analysis", "serve", "--listen", f"0.0.0.0:{L.ANALYSIS_INTAKE_PORT}"],
    Kind.PREDICTION: ["predict", "serve", "--listen", f"0.0.0.0:{L.PREDICTION_HANDOVER_PORT}"],
}
#: Options each serve command takes from the environment (``cli/_serve.py`` envvars).
_HOST_ENV: Final[Mapping[Kind, list[str]]] = {
    Kind.GATEWAY: [L.PARTY_ENV, L.RUNTIME_ENV, L.PREDICTION_ENV],
    Kind.ANALYSIS: [L.PREDICTION_ENV],
    Kind.PREDICTION: [],
}


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def sgx_kinds(plan: Plan) -> list[Kind]:
    kinds = sorted({c.kind for c in plan.components if c.placement.sgx})
    if not kinds:
        pins = sorted({f"{c.kind.value} = {c.placement.tee}" for c in plan.components})
        raise DeployError(
            f"the task pins no component to tee = 'sgx' ({', '.join(pins)}): there is "
            "nothing for Gramine to run. Pin sgx in the task's [measurements], or render "
            "--target k8s for TDX, SEV-SNP or simulated components",
            id="deploy.gramine.no_sgx_component",
        )
    return kinds


def manifest_template(kind: Kind, task: str) -> str:
    argv = ["python3", "-m", "chronoseal", *_CLI[kind]]
    argv += ["--spec", f"{L.TASK_DIR}/{L.TASK_FILE}"]
    argv += ["--key-file", f"{L.KEYSTORE_DIR}/{L.KEYSTORE_FILE}", *L.AGENT_OPTIONS]
    host_env = [L.CHAIN_URL_ENV, L.CONTRACT_ENV, *_HOST_ENV[kind], L.KEY_PASSWORD_ENV]
    lines = [
        f"# chronoseal {kind.value}: Gramine manifest template for Intel SGX (task {task}).",
        "# Rendered by `chronoseal deploy render --target gramine`; see docs/deployment.md.",
        "# Build it inside the component image, with the Python that runs chronoseal:",
        "#   gramine-manifest -Dentrypoint=$(realpath $(command -v python3)) \\",
        f"#       -Darch_libdir=/lib/x86_64-linux-gnu {kind.value}.manifest.template "
        f"{kind.value}.manifest",
        f"#   gramine-sgx-sign --manifest {kind.value}.manifest --output {kind.value}.manifest.sgx",
        f"#   gramine-sgx-sigstruct-view {kind.value}.sig   # MRENCLAVE: register it, pin it",
        "# The same template serves every party's gateway: nothing party-specific is measured.",
        "",
        'libos.entrypoint = "{{ entrypoint }}"',
        'loader.entrypoint.uri = "file:{{ gramine.libos }}"',
        # Only "error" is suitable in production: other levels may leak data.
        'loader.log_level = "error"',
        "",
        "# The command is measured; the host cannot choose another one.",
        "loader.argv = [" + ", ".join(_q(a) for a in argv) + "]",
        "",
        'loader.env.LD_LIBRARY_PATH = "/lib:{{ arch_libdir }}:/usr/{{ arch_libdir }}"',
        'loader.env.OMP_NUM_THREADS = "4"',
        f"loader.env.HOME = {_q(L.TMP_DIR)}",
        'loader.env.PYTHONDONTWRITEBYTECODE = "1"',
        "# Deployment values from the host; every one is checked against the chain.",
        *(f"loader.env.{name} = {{ passthrough = true }}" for name in host_env),
        "# Secret Provisioning: after attesting the enclave, the party's secret-provisioning",
        f"# server sends the key of the keystore mount ({KEYSTORE_KEY_NAME}).",
        'loader.env.LD_PRELOAD = "libsecret_prov_attest.so"',
        'loader.env.SECRET_PROVISION_CONSTRUCTOR = "1"',
        f"loader.env.SECRET_PROVISION_SET_KEY = {_q(KEYSTORE_KEY_NAME)}",
        f"loader.env.SECRET_PROVISION_CA_CHAIN_PATH = {_q(SECRET_PROV_CA)}",
        "loader.env.SECRET_PROVISION_SERVERS = { passthrough = true }",
        "",
        "fs.mounts = [",
        '  { path = "/lib", uri = "file:{{ gramine.runtimedir() }}" },',
        '  { path = "{{ arch_libdir }}", uri = "file:{{ arch_libdir }}" },',
        '  { path = "/usr/{{ arch_libdir }}", uri = "file:/usr/{{ arch_libdir }}" },',
        "{% for path in python.get_sys_path(entrypoint) %}",
        '  { path = "{{ path }}", uri = "file:{{ path }}" },',
        "{% endfor %}",
        '  { path = "{{ entrypoint }}", uri = "file:{{ entrypoint }}" },',
        f'  {{ path = {_q(L.CONFIG_ROOT)}, uri = "file:{L.CONFIG_ROOT}" }},',
        f'  {{ type = "encrypted", path = {_q(L.STATE_DIR)}, uri = "file:{L.STATE_DIR}", '
        'key_name = "_sgx_mrenclave" },',
        f'  {{ type = "encrypted", path = {_q(L.KEYSTORE_DIR)}, uri = "file:{L.KEYSTORE_DIR}", '
        f"key_name = {_q(KEYSTORE_KEY_NAME)} }},",
        f'  {{ type = "tmpfs", path = {_q(L.TMP_DIR)} }},',
        "]",
        "",
        'sys.stack.size = "2M"',
        "sys.enable_sigterm_injection = true",
        "sys.enable_extra_runtime_domain_names_conf = true",
        "",
        "sgx.debug = false",
        "sgx.edmm_enable = false",
        f"sgx.enclave_size = {_q(ENCLAVE_SIZE[kind])}",
        f"sgx.max_threads = {MAX_THREADS}",
        f"sgx.isvprodid = {ISV_PROD_ID[kind]}",
        "sgx.isvsvn = 1",
        'sgx.remote_attestation = "dcap"',
        "",
        "sgx.trusted_files = [",
        '  "file:{{ entrypoint }}",',
        '  "file:{{ gramine.runtimedir() }}/",',
        '  "file:{{ arch_libdir }}/",',
        '  "file:/usr/{{ arch_libdir }}/",',
        "{% for path in python.get_sys_path(entrypoint) %}",
        "  \"file:{{ path }}{{ '/' if path.is_dir() else '' }}\",",
        "{% endfor %}",
        "]",
        "",
        "# Read, never trusted for secrecy: the task spec (checked against its hash on chain),",
        "# the party's config and data (its own, in its own domain), the secret-provisioning CA.",
        "sgx.allowed_files = [",
        f'  "file:{L.CONFIG_ROOT}/",',
        "]",
        "",
    ]
    return "\n".join(lines)


def gramine_files(plan: Plan) -> dict[str, str]:
    return {
        f"{kind.value}.manifest.template": manifest_template(kind, plan.task)
        for kind in sgx_kinds(plan)
    }
