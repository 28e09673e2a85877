"""Kubernetes manifests: one multi-document file per component, plus the namespaces with
their default-deny network policies.

Every document is a plain ``dict`` (validated against the Kubernetes schema in the tests).
Secrets are only ever *referenced* by name; their values never pass through here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chronoseal.errors import DeployError
from chronoseal.ledger import GENESIS_NAME, VALIDATOR_WEI, clique_genesis, static_peer

from . import _layout as L
from ._gramine import ENCLAVE_SIZE
from ._plan import CHAIN_USERS, Component, DeployInput, Kind, Plan
from ._tee import (
    SGX_ENCLAVE_RESOURCE,
    SGX_EPC_RESOURCE,
    SGX_NODE_LABEL,
    SGX_PROVISION_RESOURCE,
    SGX_QUOTE_PROVIDER_ANNOTATION,
    SIMULATED_WARNING,
)

Doc = dict[str, Any]

_QUANTITY = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,6})?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_SUFFIX = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_SUFFIX |= {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}
#: What a node can give one container or volume: a CPU count from a millicore to 1024
#: cores, memory from 1 MiB to 16 TiB, a state volume from 1 MiB to 64 TiB.
_CPU = (1e-3, 1024.0)
_MEMORY = (2.0**20, 2.0**44)
_STORAGE = (2.0**20, 2.0**46)


def _quantity(value: str, what: str, bounds: tuple[float, float], example: str) -> None:
    """A Kubernetes quantity within ``bounds`` (in cores or bytes), else a refusal."""
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise DeployError(
            f"{what} {value!r} is not a Kubernetes quantity (e.g. {example})",
            id="deploy.resources.invalid",
        )
    amount = float(value[: match.start(2)] if match.group(2) else value)
    amount *= _SUFFIX.get(match.group(2) or "", 1.0)
    low, high = bounds
    if not low <= amount <= high:
        raise DeployError(
            f"{what} {value!r} is outside what a node can give a component",
            id="deploy.resources.out_of_range",
        )


_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_UID = 10001
_TEE_LABEL = f"{L.LABEL_PREFIX}/tee"
_WARNING_ANNOTATION = f"{L.LABEL_PREFIX}/warning"
_DNS_PORT = 53


@dataclass(frozen=True)
class Resources:
    """CPU and memory a component's container requests and may use at most."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def check(self) -> None:
        for value in (self.cpu_request, self.cpu_limit):
            _quantity(value, "CPU", _CPU, "500m, 2")
        for value in (self.memory_request, self.memory_limit):
            _quantity(value, "memory", _MEMORY, "512Mi, 4Gi")


DEFAULT_RESOURCES: Mapping[Kind, Resources] = {
    Kind.GATEWAY: Resources("250m", "512Mi", "1", "2Gi"),
    Kind.ANALYSIS: Resources("1", "2Gi", "2", "8Gi"),
    Kind.PREDICTION: Resources("250m", "1Gi", "1", "4Gi"),
    Kind.PARTY_AGENT: Resources("100m", "128Mi", "500m", "512Mi"),
    Kind.ANALYSIS_WORKER: Resources("1", "2Gi", "2", "4Gi"),
    Kind.VALIDATOR: Resources("250m", "512Mi", "1", "2Gi"),
}

#: EPC an SGX component's enclave needs: its ``sgx.enclave_size`` (Gramine's "G" is GiB).
SGX_EPC: Mapping[Kind, str] = {kind: f"{size}i" for kind, size in ENCLAVE_SIZE.items()}


def default_image() -> str:
    from importlib.metadata import version

    return f"chronoseal:{version('chronoseal')}"


@dataclass(frozen=True)
class K8sOptions:
    """``image`` runs every component; SGX components run ``sgx_image`` (default: GSC's name
    for the graminized image, ``gsc-<image>``). ``contract`` None writes a placeholder."""

    image: str = field(default_factory=default_image)
    sgx_image: str | None = None
    chain_url: str = L.DEFAULT_CHAIN_URL
    contract: str | None = None
    namespace_prefix: str = "chronoseal"
    storage: str = "1Gi"
    resources: Mapping[Kind, Resources] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))

    def check(self) -> None:
        for image in (self.image, self.sgx_image):
            if image is not None and not _IMAGE.fullmatch(image):
                raise DeployError(f"{image!r} is not an image reference", id="deploy.image.invalid")
        if self.contract is not None and not _ADDRESS.fullmatch(self.contract):
            raise DeployError(
                f"--contract {self.contract!r} is not an address (0x and 40 hex digits)",
                id="deploy.contract.invalid",
            )
        chain_port(self.chain_url)
        _quantity(self.storage, "--storage", _STORAGE, "1Gi")
        for resources in self.resources.values():
            resources.check()

    @property
    def gsc_image(self) -> str:
        return self.sgx_image or f"gsc-{self.image}"


def chain_port(url: str) -> int:
    """The TCP port of the chain's JSON-RPC URL (what every component's egress must reach)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        port, parts = None, None
    if parts is None or parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise DeployError(
            f"--chain-url {url!r} is not an http(s):// or ws(s):// URL of a JSON-RPC node",
            id="deploy.chain.invalid",
        )
    if port is not None:
        return port
    return 443 if parts.scheme in ("https", "wss") else 80


# --- names and labels ---------------------------------------------------------------------


def keystore_secret(c: Component) -> str:
    return f"{c.name}-keystore"


def tsdb_secret(c: Component) -> str:
    return f"{c.name}-tsdb"


def validator_secret(c: Component) -> str:
    """The validator's signer key and node key (``signer.key``, ``node.key``)."""
    return f"{c.name}-keys"


#: The genesis file name: the client names its network (and data directory) after it.
GENESIS_FILE = f"{GENESIS_NAME}.json"


def secret_prov_ca(c: Component) -> str:
    """A ConfigMap (public data) with ``ca.crt``: the CA of the party's secret-provisioning
    server that releases the SGX keystore's encryption key to the attested enclave."""
    return f"{c.name}-secret-prov-ca"


def data_claim(c: Component) -> str:
    return f"{c.name}-data"


def _labels(plan: Plan, c: Component) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "chronoseal",
        "app.kubernetes.io/instance": c.name,
        "app.kubernetes.io/component": c.kind.value,
        "app.kubernetes.io/part-of": "chronoseal",
        f"{L.LABEL_PREFIX}/task": plan.task,
        _TEE_LABEL: c.placement.tee,
    }
    if c.party is not None:
        labels[f"{L.LABEL_PREFIX}/party"] = c.party
    return labels


def _selector(c: Component) -> dict[str, str]:
    return {"app.kubernetes.io/name": "chronoseal", "app.kubernetes.io/instance": c.name}


def _meta(name: str, namespace: str, labels: Mapping[str, str], **extra: Any) -> Doc:
    return {"name": name, "namespace": namespace, "labels": dict(labels), **extra}


def _annotations(c: Component) -> dict[str, str]:
    if c.placement.simulated:
        return {_WARNING_ANNOTATION: SIMULATED_WARNING}
    if c.placement.sgx:
        return {SGX_QUOTE_PROVIDER_ANNOTATION: "aesmd"}
    return {}


# --- namespaces and their baseline policies ----------------------------------------------


def namespaces_file(plan: Plan, options: K8sOptions) -> list[Doc]:
    """Namespaces, then in each: deny all traffic, allow DNS and the chain node's RPC."""
    docs: list[Doc] = []
    for ns in plan.namespaces:
        members = [c for c in plan.components if c.namespace == ns]
        labels = {
            "app.kubernetes.io/part-of": "chronoseal",
            f"{L.LABEL_PREFIX}/task": plan.task,
        }
        # Pod Security "restricted" fits every chronoseal pod, except that the SGX admission
        # webhook mounts the node's aesmd socket (a hostPath volume) into SGX pods.
        level = "warn" if any(c.placement.sgx for c in members) else "enforce"
        labels[f"pod-security.kubernetes.io/{level}"] = "restricted"
        if any(c.placement.simulated for c in members):
            labels[_TEE_LABEL] = "simulated"
        meta: Doc = {"name": ns, "labels": labels}
        if any(c.placement.simulated for c in members):
            meta["annotations"] = {_WARNING_ANNOTATION: SIMULATED_WARNING}
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    for ns in plan.namespaces:
        docs.extend(_baseline_policies(ns, plan, chain_port(options.chain_url)))
    return docs


def _baseline_policies(ns: str, plan: Plan, rpc_port: int) -> list[Doc]:
    """Deny all, allow DNS and, when the chain node is outside the cluster, its RPC port
    (with the members' validators rendered, each component's own policy opens its node)."""
    labels = {"app.kubernetes.io/part-of": "chronoseal", f"{L.LABEL_PREFIX}/task": plan.task}
    dns_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    policies = [
        _policy("default-deny", ns, labels, {}, ingress=[], egress=[]),
        _policy(
            "allow-dns",
            ns,
            labels,
            {},
            egress=[
                {
                    "to": [dns_peer],
                    "ports": [
                        {"protocol": "UDP", "port": _DNS_PORT},
                        {"protocol": "TCP", "port": _DNS_PORT},
                    ],
                }
            ],
        ),
        # The chain node is outside the cluster (an RPC URL): any destination on its port.
        # Narrow it with an ipBlock of the node's addresses where they are known.
        _policy(
            "allow-chain-rpc",
            ns,
            labels,
            {},
            egress=[{"ports": [{"protocol": "TCP", "port": rpc_port}]}],
        ),
    ]
    return policies[:2] if plan.validator_order else policies


def _policy(
    name: str,
    ns: str,
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    *,
    ingress: list[Doc] | None = None,
    egress: list[Doc] | None = None,
) -> Doc:
    spec: Doc = {"podSelector": {"matchLabels": dict(selector)} if selector else {}}
    types = []
    if ingress is not None:
        types.append("Ingress")
        spec["ingress"] = ingress
    if egress is not None:
        types.append("Egress")
        spec["egress"] = egress
    spec["policyTypes"] = types
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, ns, labels),
        "spec": spec,
    }


def _peer(c: Component) -> Doc:
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": c.namespace}},
        "podSelector": {"matchLabels": _selector(c)},
    }


def _flow(peers: list[Component], port: int, direction: str) -> Doc:
    return {direction: [_peer(p) for p in peers], "ports": [{"protocol": "TCP", "port": port}]}


def component_policy(plan: Plan, c: Component) -> Doc | None:
    """The flows DESIGN.md allows ``c`` beyond DNS and the chain, on both ends of each."""
    if c.kind == Kind.VALIDATOR:
        return _validator_policy(plan, c)
    analysis, prediction = plan.one(Kind.ANALYSIS), plan.one(Kind.PREDICTION)
    gateways = plan.of_kind(Kind.GATEWAY)
    workers = plan.of_kind(Kind.ANALYSIS_WORKER)
    recipients = [a for a in plan.of_kind(Kind.PARTY_AGENT) if a.recipient]
    ingress: list[Doc] | None = None
    egress: list[Doc] | None = None
    if c.kind == Kind.GATEWAY:
        egress = [
            _flow([analysis], L.ANALYSIS_INTAKE_PORT, "to"),
            _flow([prediction], L.PREDICTION_FEEDS_PORT, "to"),
        ]
        tsdb = {"podSelector": {"matchLabels": {f"{L.LABEL_PREFIX}/tsdb": c.name}}}
        egress += [{"to": [tsdb], "ports": [{"protocol": "TCP", "port": p}]} for p in c.tsdb_ports]
    elif c.kind == Kind.ANALYSIS:
        ingress = [_flow(gateways, L.ANALYSIS_INTAKE_PORT, "from")] if gateways else []
        egress = [_flow([prediction], L.PREDICTION_HANDOVER_PORT, "to")]
        # its Dask workers: admission and Dask to them, their Dask connections to the
        # scheduler; nothing between workers (each admits only the scheduler's certificate)
        for port in (L.WORKER_ADMISSION_PORT, L.WORKER_DASK_PORT):
            egress += [_flow(workers, port, "to")] if workers else []
        ingress += [_flow(workers, L.DASK_SCHEDULER_PORT, "from")] if workers else []
    elif c.kind == Kind.ANALYSIS_WORKER:
        ingress = [
            _flow([analysis], L.WORKER_ADMISSION_PORT, "from"),
            _flow([analysis], L.WORKER_DASK_PORT, "from"),
        ]
        egress = [_flow([analysis], L.DASK_SCHEDULER_PORT, "to")]
    elif c.kind == Kind.PREDICTION:
        ingress = [_flow([analysis], L.PREDICTION_HANDOVER_PORT, "from")]
        if gateways:
            ingress.append(_flow(gateways, L.PREDICTION_FEEDS_PORT, "from"))
        if recipients:
            ingress.append(_flow(recipients, L.PREDICTION_FORECASTS_PORT, "from"))
    elif c.recipient:
        egress = [_flow([prediction], L.PREDICTION_FORECASTS_PORT, "to")]
    nodes = chain_nodes(plan, c)
    if nodes:  # the members' validators: this component's own node(s), nothing else
        egress = [*(egress or []), _flow(nodes, L.VALIDATOR_RPC_PORT, "to")]
    if ingress is None and egress is None:
        return None
    return _policy(
        f"{c.name}-flows",
        c.namespace,
        _labels(plan, c),
        _selector(c),
        ingress=ingress,
        egress=egress,
    )


def _validator_policy(plan: Plan, v: Component) -> Doc:
    """RLPx to and from the other validators only; JSON-RPC from the components that use
    this node: its own member's gateway and party agent, and the runtimes (which list every
    member's node, their own first)."""
    others = [o for o in plan.of_kind(Kind.VALIDATOR) if o.name != v.name]
    clients = [c for c in plan.components if v in chain_nodes(plan, c)]
    ingress = [_flow(others, L.VALIDATOR_P2P_PORT, "from")] if others else []
    ingress += [_flow(clients, L.VALIDATOR_RPC_PORT, "from")] if clients else []
    egress = [_flow(others, L.VALIDATOR_P2P_PORT, "to")] if others else []
    return _policy(
        f"{v.name}-flows",
        v.namespace,
        _labels(plan, v),
        _selector(v),
        ingress=ingress,
        egress=egress,
    )


def _validators_in_order(plan: Plan) -> list[Component]:
    by_name = {v.name: v for v in plan.of_kind(Kind.VALIDATOR)}
    return [by_name[name] for name in plan.validator_order]


def chain_nodes(plan: Plan, c: Component) -> list[Component]:
    """The validators ``c`` talks to, in the order it tries them: a party's components only
    their own member's node; a runtime every member's, starting at a different one for the
    analysis and the prediction runtime (as ``chronoseal run --rpc`` does); none without
    rendered validators or for a component that does not use the chain."""
    validators = _validators_in_order(plan)
    if not validators or c.kind not in CHAIN_USERS:
        return []
    if c.party is not None:
        return [v for v in validators if v.party == c.party]
    first = 0 if c.kind == Kind.ANALYSIS else 1 % len(validators)
    return validators[first:] + validators[:first]


def _rpc_url(v: Component) -> str:
    return f"http://{_service_host(v)}:{L.VALIDATOR_RPC_PORT}"


def chain_url(plan: Plan, c: Component, options: K8sOptions) -> str:
    """What ``c``'s ``--chain`` says: its validators' URLs (comma-separated, tried in order),
    or ``--chain-url`` when the chain is external."""
    nodes = chain_nodes(plan, c)
    return ",".join(_rpc_url(v) for v in nodes) if nodes else options.chain_url


def _validator_pod_host(v: Component) -> str:
    """The stable DNS name of the validator's one pod (its StatefulSet's headless service)."""
    return f"{v.name}-0.{_service_host(v)}"


def _validator_args(plan: Plan, v: Component) -> list[str]:
    """``chronoseal chain validator``: the same client command line and gossip patch as the
    loopback network (``ledger.validator_node_command``); each validator dials the ones after
    it in the members' order (one dialler per pair), the ones before dial it."""
    order = _validators_in_order(plan)
    later = order[order.index(v) + 1 :]
    peers: list[str] = []
    for o in later:
        peer = static_peer(o.node_id or "", _validator_pod_host(o), L.VALIDATOR_P2P_PORT)
        peers += ["--static-peer", peer]
    return [
        "chain", "validator",
        "--genesis", f"{L.CHAIN_DIR}/{GENESIS_FILE}",
        "--data-dir", L.VALIDATOR_DATA_DIR,
        "--signer-key-file", f"{L.VALIDATOR_KEYS_DIR}/{L.SIGNER_KEY_FILE}",
        "--node-key-file", f"{L.VALIDATOR_KEYS_DIR}/{L.NODE_KEY_FILE}",
        "--p2p-port", str(L.VALIDATOR_P2P_PORT),
        "--rpc-listen", f"0.0.0.0:{L.VALIDATOR_RPC_PORT}",
        "--ext-ip", f"$({L.POD_IP_ENV})",
        *peers,
    ]  # fmt: skip


def genesis_json(inp: DeployInput) -> str:
    """The members' Clique genesis: every member's signer in the extra-data (and funded, to
    pay for its components' keys), the same bytes in every member's ConfigMap."""
    given = inp.validators
    if given is None:
        raise DeployError("no validators to render a genesis for", id="deploy.validators.invalid")
    signers = [m.signer for m in given.members.values()]
    genesis = clique_genesis(
        signers,
        dict.fromkeys(signers, VALIDATOR_WEI),
        period=given.period,
        chain_id=given.chain_id,
    )
    return json.dumps(genesis, indent=1, sort_keys=True) + "\n"


# --- one component -----------------------------------------------------------------------


def _service_host(c: Component) -> str:
    return f"{c.name}.{c.namespace}.svc"


def _args(plan: Plan, c: Component) -> list[str]:
    """The serve command; ``$(VAR)`` is expanded by the kubelet from the container's env."""
    if c.kind == Kind.VALIDATOR:
        return _validator_args(plan, c)
    chain = ["--chain", f"$({L.CHAIN_URL_ENV})", "--contract", f"$({L.CONTRACT_ENV})"]
    common = ["--spec", f"{L.TASK_DIR}/{L.TASK_FILE}", *chain]
    key = ["--key-file", f"{L.KEYSTORE_DIR}/{L.KEYSTORE_FILE}"]
    party = ["--party", c.party or "", "--config", f"{L.PARTY_DIR}/{L.PARTY_FILE}"]
    prediction = ["--prediction", f"$({L.PREDICTION_ENV})"]
    state = ["--state-dir", L.STATE_DIR]
    if c.kind == Kind.GATEWAY:
        runtime = ["--runtime", f"$({L.RUNTIME_ENV})"]
        cmd = ["gateway", "serve", *party, *common, *key, *runtime, *prediction, *state]
    elif c.kind == Kind.ANALYSIS:
        listen = ["--listen", f"0.0.0.0:{L.ANALYSIS_INTAKE_PORT}"]
        cmd = ["analysis", "serve", *common, *key, *listen, *prediction, *_worker_args(plan)]
    elif c.kind == Kind.ANALYSIS_WORKER:
        # No chain, no spec, no probes' port: it serves the one runtime that admits it,
        # then exits and is restarted for the next task.
        return [
            "analysis",
            "worker",
            "--listen",
            f"0.0.0.0:{L.WORKER_ADMISSION_PORT}",
            "--dask-port",
            str(L.WORKER_DASK_PORT),
            "--contact",
            f"$({L.POD_NAME_ENV}).{_service_host(c)}",
        ]
    elif c.kind == Kind.PREDICTION:
        listen = ["--listen", f"0.0.0.0:{L.PREDICTION_HANDOVER_PORT}"]
        cmd = ["predict", "serve", *common, *key, *listen]
    else:
        specs = ["--specs", f"{L.TASK_DIR}/{L.TASK_FILE}", *chain]
        cmd = ["party", "serve", *party, *specs, *key, *state]
    return [*cmd, *L.AGENT_OPTIONS]


def _worker_args(plan: Plan) -> list[str]:
    """``analysis serve``'s options for its worker pods: each one's stable name, and where
    its Dask scheduler listens and is reached."""
    args: list[str] = []
    for w in plan.of_kind(Kind.ANALYSIS_WORKER):
        for i in range(w.replicas):
            args += ["--worker-at", f"{w.name}-{i}.{_service_host(w)}:{L.WORKER_ADMISSION_PORT}"]
    if args:
        analysis = plan.one(Kind.ANALYSIS)
        args += ["--dask-listen", f"0.0.0.0:{L.DASK_SCHEDULER_PORT}"]
        args += ["--dask-contact", _service_host(analysis)]
    return args


def config_map_name(c: Component) -> str:
    return f"{c.name}-config"


def _config_map(plan: Plan, c: Component, inp: DeployInput, options: K8sOptions) -> Doc:
    data = {
        L.TASK_FILE: inp.spec_text,
        "chain-url": chain_url(plan, c, options),
        "contract": options.contract or L.CONTRACT_PLACEHOLDER,
    }
    if c.kind == Kind.VALIDATOR:  # a node reads no task: only the members' genesis
        data = {GENESIS_FILE: genesis_json(inp)}
    elif c.party is not None:
        data[L.PARTY_FILE] = inp.parties[c.party].config_text
    if c.placement.sgx:
        data["secret-provision-servers"] = L.SECRET_PROV_PLACEHOLDER
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(config_map_name(c), c.namespace, _labels(plan, c)),
        "data": data,
    }


def _service(plan: Plan, c: Component) -> Doc:
    ports = _ports(c)
    spec: Doc = {
        "selector": _selector(c),
        "ports": [
            {"name": n, "port": p, "targetPort": n, "protocol": "TCP"}
            for n, p in sorted(ports.items(), key=lambda kv: kv[1])
        ],
    }
    if c.stable_names:
        spec["clusterIP"] = "None"  # a StatefulSet's governing service: stable pod DNS
    if c.kind == Kind.VALIDATOR:
        # the validators must reach each other before any is ready: none seals block 1
        # until it is linked to every other
        spec["publishNotReadyAddresses"] = True
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(c.name, c.namespace, _labels(plan, c)),
        "spec": spec,
    }


def _ports(c: Component) -> dict[str, int]:
    """What it listens on, and the agents' health endpoint (a worker and a validator have
    none: the client's RPC port is the validator's probe)."""
    if c.kind in (Kind.ANALYSIS_WORKER, Kind.VALIDATOR):
        return dict(c.listens)
    return {**c.listens, "health": L.HEALTH_PORT}


def _peers_env(plan: Plan, c: Component) -> dict[str, str]:
    prediction = f"{_service_host(plan.one(Kind.PREDICTION))}:{L.PREDICTION_HANDOVER_PORT}"
    if c.kind == Kind.GATEWAY:
        runtime = f"{_service_host(plan.one(Kind.ANALYSIS))}:{L.ANALYSIS_INTAKE_PORT}"
        return {L.PARTY_ENV: c.party or "", L.RUNTIME_ENV: runtime, L.PREDICTION_ENV: prediction}
    if c.kind == Kind.ANALYSIS:
        return {L.PREDICTION_ENV: prediction}
    return {}


def _env(plan: Plan, c: Component) -> list[Doc]:
    def from_config(name: str, key: str) -> Doc:
        ref = {"configMapKeyRef": {"name": config_map_name(c), "key": key}}
        return {"name": name, "valueFrom": ref}

    if c.kind == Kind.VALIDATOR:
        pod_ip: Doc = {"fieldRef": {"fieldPath": "status.podIP"}}
        return [
            {"name": L.POD_IP_ENV, "valueFrom": pod_ip},
            {"name": L.ETHEREUMJS_ENV, "value": L.ETHEREUMJS_BIN},
            {"name": "HOME", "value": L.TMP_DIR},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ]
    if c.kind == Kind.ANALYSIS_WORKER:
        pod: Doc = {"fieldRef": {"fieldPath": "metadata.name"}}
        worker: list[Doc] = [
            {"name": L.POD_NAME_ENV, "valueFrom": pod},
            {"name": "HOME", "value": L.TMP_DIR},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ]
        if c.placement.simulated:
            worker.append({"name": "CHRONOSEAL_TEE_WARNING", "value": SIMULATED_WARNING})
        return worker
    env = [
        from_config(L.CHAIN_URL_ENV, "chain-url"),
        from_config(L.CONTRACT_ENV, "contract"),
        {
            "name": L.KEY_PASSWORD_ENV,
            "valueFrom": {
                "secretKeyRef": {"name": keystore_secret(c), "key": L.KEYSTORE_PASSWORD_KEY}
            },
        },
        {"name": "HOME", "value": L.TMP_DIR},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]
    # Also in the args; an SGX container has no args (its argv is fixed in its manifest).
    env += [{"name": name, "value": value} for name, value in _peers_env(plan, c).items()]
    if _reads_postgres(c):
        ref = {"secretKeyRef": {"name": tsdb_secret(c), "key": "password"}}
        env.append({"name": "PGPASSWORD", "valueFrom": ref})
    for name in c.source_secret_env:
        ref = {"secretKeyRef": {"name": tsdb_secret(c), "key": name}}
        env.append({"name": name, "valueFrom": ref})
    if c.placement.sgx:
        env.append(from_config("SECRET_PROVISION_SERVERS", "secret-provision-servers"))
    if c.placement.simulated:
        env.append({"name": "CHRONOSEAL_TEE_WARNING", "value": SIMULATED_WARNING})
    return env


def _mounts_and_volumes(c: Component) -> tuple[list[Doc], list[Doc]]:
    if c.kind == Kind.ANALYSIS_WORKER:  # no spec, no key: scratch space only
        scratch: Doc = {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}
        return [{"name": "tmp", "mountPath": L.TMP_DIR}], [scratch]
    if c.kind == Kind.VALIDATOR:
        return _validator_mounts_and_volumes(c)
    cm = config_map_name(c)
    mounts: list[Doc] = [
        {"name": "task", "mountPath": L.TASK_DIR, "readOnly": True},
        {"name": "keystore", "mountPath": L.KEYSTORE_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": L.TMP_DIR},
    ]
    volumes: list[Doc] = [
        {
            "name": "task",
            "configMap": {"name": cm, "items": [{"key": L.TASK_FILE, "path": L.TASK_FILE}]},
        },
        {
            "name": "keystore",
            "secret": {
                "secretName": keystore_secret(c),
                "items": [{"key": L.KEYSTORE_FILE, "path": L.KEYSTORE_FILE}],
                "defaultMode": 0o440,
            },
        },
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
    ]
    if c.party is not None:
        mounts.append({"name": "party", "mountPath": L.PARTY_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "party",
                "configMap": {"name": cm, "items": [{"key": L.PARTY_FILE, "path": L.PARTY_FILE}]},
            }
        )
    if c.file_sources:
        mounts.append({"name": "data", "mountPath": L.DATA_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "data",
                "persistentVolumeClaim": {"claimName": data_claim(c), "readOnly": True},
            }
        )
    if c.placement.sgx:
        mounts.append({"name": "secret-prov", "mountPath": L.SECRET_PROV_DIR, "readOnly": True})
        volumes.append({"name": "secret-prov", "configMap": {"name": secret_prov_ca(c)}})
    if c.stateful:
        mounts.append({"name": "state", "mountPath": L.STATE_DIR})
    return mounts, volumes


def _validator_mounts_and_volumes(c: Component) -> tuple[list[Doc], list[Doc]]:
    """The genesis (ConfigMap), the keys (Secret, by reference), scratch, the chain data."""
    mounts: list[Doc] = [
        {"name": "genesis", "mountPath": L.CHAIN_DIR, "readOnly": True},
        {"name": "keys", "mountPath": L.VALIDATOR_KEYS_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": L.TMP_DIR},
        {"name": "state", "mountPath": L.STATE_DIR},
    ]
    keys = [{"key": k, "path": k} for k in (L.SIGNER_KEY_FILE, L.NODE_KEY_FILE)]
    volumes: list[Doc] = [
        {
            "name": "genesis",
            "configMap": {
                "name": config_map_name(c),
                "items": [{"key": GENESIS_FILE, "path": GENESIS_FILE}],
            },
        },
        {
            "name": "keys",
            "secret": {"secretName": validator_secret(c), "items": keys, "defaultMode": 0o440},
        },
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
    ]
    return mounts, volumes


def _resources(c: Component, options: K8sOptions) -> Doc:
    r = options.resources.get(c.kind, DEFAULT_RESOURCES[c.kind])
    requests: dict[str, str] = {"cpu": r.cpu_request, "memory": r.memory_request}
    limits: dict[str, str] = {"cpu": r.cpu_limit, "memory": r.memory_limit}
    if c.placement.sgx:
        # Extended resources: requests default to (and must equal) limits.
        limits[SGX_EPC_RESOURCE] = SGX_EPC[c.kind]
        limits[SGX_ENCLAVE_RESOURCE] = "1"
        limits[SGX_PROVISION_RESOURCE] = "1"
    return {"requests": requests, "limits": limits}


def _probe(path: str, initial: int) -> Doc:
    return {
        "httpGet": {"path": path, "port": "health"},
        "initialDelaySeconds": initial,
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


def _tcp_probe(initial: int) -> Doc:
    return {
        "tcpSocket": {"port": "rpc"},
        "initialDelaySeconds": initial,
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 6,
    }


def _container(plan: Plan, c: Component, options: K8sOptions) -> Doc:
    mounts, _ = _mounts_and_volumes(c)
    ports = _ports(c)
    container: Doc = {
        "name": c.kind.value,
        "image": options.gsc_image if c.placement.sgx else options.image,
        "imagePullPolicy": "IfNotPresent",
        "env": _env(plan, c),
        "ports": [
            {"name": n, "containerPort": p, "protocol": "TCP"}
            for n, p in sorted(ports.items(), key=lambda kv: kv[1])
        ],
        "resources": _resources(c, options),
        "volumeMounts": mounts,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _UID,
            "runAsGroup": _UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if "health" in ports:
        container["livenessProbe"] = _probe(L.LIVENESS_PATH, 15)
        container["readinessProbe"] = _probe(L.READINESS_PATH, 5)
    if c.kind == Kind.VALIDATOR:  # the client has no health endpoint: its RPC port answers
        container["livenessProbe"] = _tcp_probe(30)
        container["readinessProbe"] = _tcp_probe(10)
    if not c.placement.sgx:
        # A GSC image starts gramine-sgx with the argv fixed in its signed manifest instead.
        container["command"] = ["chronoseal"]
        container["args"] = _args(plan, c)
    return container


def _pod_template(plan: Plan, c: Component, options: K8sOptions) -> Doc:
    _, volumes = _mounts_and_volumes(c)
    spec: Doc = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _UID,
            "runAsGroup": _UID,
            "fsGroup": _UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(plan, c, options)],
        "volumes": volumes,
    }
    if c.placement.runtime_class is not None:
        spec["runtimeClassName"] = c.placement.runtime_class
    if c.placement.sgx:
        spec["nodeSelector"] = {SGX_NODE_LABEL: "true"}
    meta: Doc = {"labels": _labels(plan, c)}
    annotations = _annotations(c)
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


def _workload(plan: Plan, c: Component, options: K8sOptions) -> Doc:
    meta = _meta(c.name, c.namespace, _labels(plan, c))
    annotations = _annotations(c)
    if annotations:
        meta["annotations"] = annotations
    spec: Doc = {
        # One instance each: a runtime's attestation on chain binds one TLS key (a worker
        # pod is one worker, attested and posted on its own).
        "replicas": c.replicas,
        "selector": {"matchLabels": _selector(c)},
        "template": _pod_template(plan, c, options),
    }
    if not c.stable_names:
        spec["strategy"] = {"type": "Recreate"}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}
    spec["serviceName"] = c.name
    if not c.stateful:  # workers: no state, started together
        spec["podManagementPolicy"] = "Parallel"
        return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": spec}
    spec["podManagementPolicy"] = "OrderedReady"
    spec["volumeClaimTemplates"] = [
        {
            "metadata": {"name": "state", "labels": _selector(c)},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": options.storage}},
            },
        }
    ]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": spec}


def component_file(plan: Plan, c: Component, inp: DeployInput, options: K8sOptions) -> list[Doc]:
    docs = [_service(plan, c), _workload(plan, c, options)]
    if c.kind != Kind.ANALYSIS_WORKER:  # a worker reads no spec and no chain settings
        docs.insert(0, _config_map(plan, c, inp, options))
    policy = component_policy(plan, c)
    if policy is not None:
        docs.append(policy)
    return docs


def secrets_needed(plan: Plan) -> list[tuple[str, str, list[str]]]:
    """``(namespace, secret, keys)`` for every Secret the manifests reference (never rendered)."""
    needed = []
    for c in plan.components:
        if c.chain_key:
            keystore = [L.KEYSTORE_FILE, L.KEYSTORE_PASSWORD_KEY]
            needed.append((c.namespace, keystore_secret(c), keystore))
        if c.kind == Kind.VALIDATOR:
            node_keys = [L.SIGNER_KEY_FILE, L.NODE_KEY_FILE]
            needed.append((c.namespace, validator_secret(c), node_keys))
        keys = (["password"] if _reads_postgres(c) else []) + list(c.source_secret_env)
        if keys:
            needed.append((c.namespace, tsdb_secret(c), keys))
    return needed


def _reads_postgres(c: Component) -> bool:
    """Whether a gateway needs ``PGPASSWORD`` (the time-series stores' credentials come by
    ``auth=env:NAME`` instead)."""
    return c.postgres_sources
