"""Render a task's deployment into files (name -> text) and write them deterministically."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chronoseal.errors import DeployError

from . import _layout as L
from ._gramine import KEYSTORE_KEY_NAME, gramine_files
from ._k8s import (
    K8sOptions,
    component_file,
    config_map_name,
    data_claim,
    namespaces_file,
    secret_prov_ca,
    secrets_needed,
)
from ._plan import DeployInput, Kind, Plan, plan
from ._tee import SIMULATED_WARNING

NAMESPACES_FILE = "namespaces.yaml"
#: Secret keys created from files (a keystore, a validator's key files), not literals.
_FILE_KEYS = frozenset({L.KEYSTORE_FILE, L.SIGNER_KEY_FILE, L.NODE_KEY_FILE})
README_FILE = "README.txt"


@dataclass(frozen=True)
class Rendered:
    """The files of one target, by name, and the warnings a user must see (simulated TEEs,
    placeholders left to fill in)."""

    files: Mapping[str, str]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def write(self, out: Path) -> list[Path]:
        """Write every file under ``out`` (created if missing), in name order."""
        try:
            out.mkdir(parents=True, exist_ok=True)
            written = []
            for name in sorted(self.files):
                path = out / name
                path.write_text(self.files[name], encoding="utf-8", newline="\n")
                written.append(path)
        except OSError as exc:
            raise DeployError(
                f"cannot write the manifests to {out}: {exc.strerror or exc}",
                id="deploy.output.unwritable",
            ) from None
        return written


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings (the task spec, a party config) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_documents(docs: list[dict[str, Any]], header: str = "") -> str:
    body = yaml.dump_all(
        docs,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        explicit_start=True,
        width=100,
    )
    return header + body


def _simulated_header(names: list[str]) -> str:
    if not names:
        return ""
    return (
        "# " + "=" * 86 + "\n"
        f"# WARNING ({', '.join(names)}): {SIMULATED_WARNING}\n"
        "# " + "=" * 86 + "\n"
    )


def render_k8s(inp: DeployInput, options: K8sOptions | None = None) -> Rendered:
    """Kubernetes manifests for ``inp``'s task: ``namespaces.yaml``, one file per component
    and ``README.txt`` (what to create first and the ``kubectl apply`` order)."""
    options = options or K8sOptions()
    options.check()
    p = plan(inp, namespace_prefix=options.namespace_prefix)
    files: dict[str, str] = {NAMESPACES_FILE: dump_documents(namespaces_file(p, options))}
    for c in p.components:
        header = _simulated_header([c.name] if c.placement.simulated else [])
        files[f"{c.name}.yaml"] = dump_documents(component_file(p, c, inp, options), header)
    warnings = _warnings(p, options)
    files[README_FILE] = _readme(p, options, warnings)
    return Rendered(files=files, warnings=tuple(warnings))


def render_gramine(inp: DeployInput) -> Rendered:
    """One ``<component>.manifest.template`` per component the task pins to SGX."""
    p = plan(inp)
    files = gramine_files(p)
    warnings = [
        f"{c.name} is pinned to tee = {c.placement.tee}: no Gramine manifest (render --target k8s)"
        for c in p.components
        if c.kind not in (Kind.PARTY_AGENT, Kind.VALIDATOR) and not c.placement.sgx
    ]
    files[README_FILE] = _gramine_readme(p, sorted(files))
    return Rendered(files=files, warnings=tuple(sorted(set(warnings))))


def _warnings(p: Plan, options: K8sOptions) -> list[str]:
    warnings = [
        f"{c.name} runs a SIMULATED TEE (no hardware isolation; labelled "
        f"{L.LABEL_PREFIX}/tee=simulated)"
        for c in p.components
        if c.placement.simulated
    ]
    warnings += [
        f"{c.name} runs in SGX: its ConfigMap says {L.SECRET_PROV_PLACEHOLDER!r} for the "
        "secret-provisioning server; set it, and create the CA ConfigMap (README.txt)"
        for c in p.components
        if c.placement.sgx
    ]
    if options.contract is None:
        warnings.append(
            f"no --contract given: the ConfigMaps say {L.CONTRACT_PLACEHOLDER!r}; render again "
            "with --contract 0x... once the consortium contract is deployed"
        )
    if p.validator_order and options.chain_url != L.DEFAULT_CHAIN_URL:
        warnings.append(
            f"--chain-url {options.chain_url} is not used: with --validators every component "
            "talks to its own member's validator"
        )
    elif not p.validator_order and options.chain_url == L.DEFAULT_CHAIN_URL:
        warnings.append(
            f"no --chain-url given: the ConfigMaps point at {L.DEFAULT_CHAIN_URL}, which does "
            "not resolve; render again with the consortium node's JSON-RPC URL"
        )
    return warnings


def _readme(p: Plan, options: K8sOptions, warnings: list[str]) -> str:
    lines = [
        f"chronoseal Kubernetes manifests for task {p.task} "
        "(chronoseal deploy render --target k8s)",
        "",
    ]
    if warnings:
        lines += ["WARNINGS", *(f"  ! {w}" for w in warnings), ""]
    lines += ["Components", ""]
    for c in p.components:
        where = c.placement.runtime_class or (
            "SGX node (Intel SGX device plugin, GSC image)" if c.placement.sgx else "runc"
        )
        lines.append(
            f"  {c.namespace}/{c.name}: tee {c.placement.tee}, {where}, "
            f"{'StatefulSet' if c.stable_names else 'Deployment'}"
            + (f" x {c.replicas}" if c.replicas != 1 else "")
        )
    lines += [
        "",
        "Apply in this order",
        "",
        f"  1. kubectl apply -f {NAMESPACES_FILE}   # namespaces, default-deny, DNS"
        + ("" if p.validator_order else ", chain egress"),
        "  2. create the Secrets (values never pass through these files):",
    ]
    for ns, secret, keys in secrets_needed(p):
        sources = " ".join(
            f"--from-file={k}=PATH" if k in _FILE_KEYS else f"--from-literal={k}=..." for k in keys
        )
        lines.append(f"       kubectl -n {ns} create secret generic {secret} {sources}")
    step = 3
    claims = [c for c in p.components if c.file_sources]
    if claims:
        lines.append(
            f"  {step}. give each gateway with file sources its data (read-only at {L.DATA_DIR}):"
        )
        lines += [f"       PersistentVolumeClaim {c.namespace}/{data_claim(c)}" for c in claims]
        step += 1
    sgx = [c for c in p.components if c.placement.sgx]
    if sgx:
        lines.append(
            f"  {step}. for each SGX component (image {options.gsc_image}, built with GSC from the "
            "Gramine manifest of --target gramine): the PF-encrypted keystore in its Secret, "
            "the secret-provisioning server's CA and address:"
        )
        lines += [
            f"       kubectl -n {c.namespace} create configmap {secret_prov_ca(c)} "
            f"--from-file=ca.crt=PATH; set secret-provision-servers in {config_map_name(c)}"
            for c in sgx
        ]
        step += 1
    if any(c.tsdb_ports for c in p.components):
        lines.append(
            f"  {step}. label each party's TSDB pod {L.LABEL_PREFIX}/tsdb=<gateway name> (in the "
            "gateway's namespace), or edit the gateway's egress rule to an ipBlock"
        )
        step += 1
    if p.validator_order:
        lines += [
            f"  {step}. each member's validator (they seal once all are linked); then deploy the",
            "       consortium contract through one of them and render again with --contract:",
            *(f"       kubectl apply -f {name}.yaml" for name in p.validator_order),
        ]
        step += 1
    lines.append(f"  {step}. the components (runtime namespace first, then each party's):")
    others = [c for c in p.components if c.kind != Kind.VALIDATOR]
    runtime_first = sorted(others, key=lambda c: c.namespace != p.runtime_namespace)
    lines += [f"       kubectl apply -f {c.name}.yaml" for c in runtime_first]
    lines.append("")
    lines += [
        "Each party applies only its own namespace's files on its own cluster; the runtime",
        f"namespace ({p.runtime_namespace}) runs on the shared, untrusted hosts. See",
        "docs/deployment.md.",
        "",
    ]
    return "\n".join(lines)


def _gramine_readme(p: Plan, templates: list[str]) -> str:
    lines = [
        f"chronoseal Gramine manifest templates for task {p.task} (Intel SGX, DCAP attestation)",
        "",
        *(f"  {t}" for t in templates),
        "",
        "Build each inside the component image (gramine-manifest, gramine-sgx-sign), register",
        "the MRENCLAVE that gramine-sgx-sigstruct-view prints on chain and pin it in the task.",
        f"Provision the keystore's encryption key ({KEYSTORE_KEY_NAME}) with Gramine's Secret",
        "Provisioning; see docs/deployment.md.",
        "",
    ]
    return "\n".join(lines)


__all__ = ["Rendered", "dump_documents", "render_gramine", "render_k8s"]
