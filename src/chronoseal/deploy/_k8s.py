"""Kubernetes manifests: one multi-document file per component, plus the namespaces with
their default-deny network policies.

Every document is a plain ``dict`` (validated against the Kubernetes schema in the tests).
Secrets are only ever *referenced* by name; their values never pass through here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chronoseal.errors import DeployError

from . import _layout as L
from ._gramine import ENCLAVE_SIZE
from ._plan import Component, DeployInput, Kind, Plan
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
    labels = {"app.kubernetes.io/part-of": "chronoseal", f"{L.LABEL_PREFIX}/task": plan.task}
    dns_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    return [
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


# --- one component -----------------------------------------------------------------------


def _service_host(c: Component) -> str:
    return f"{c.name}.{c.namespace}.svc"


def _args(plan: Plan, c: Component) -> list[str]:
    """The serve command; ``$(VAR)`` is expanded by the kubelet from the container's env."""
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
        "chain-url": options.chain_url,
        "contract": options.contract or L.CONTRACT_PLACEHOLDER,
    }
    if c.party is not None:
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
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(c.name, c.namespace, _labels(plan, c)),
        "spec": spec,
    }


def _ports(c: Component) -> dict[str, int]:
    """What it listens on, and the agents' health endpoint (a worker has none)."""
    if c.kind == Kind.ANALYSIS_WORKER:
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
        keys = (["password"] if _reads_postgres(c) else []) + list(c.source_secret_env)
        if keys:
            needed.append((c.namespace, tsdb_secret(c), keys))
    return needed


def _reads_postgres(c: Component) -> bool:
    """Whether a gateway needs ``PGPASSWORD`` (the time-series stores' credentials come by
    ``auth=env:NAME`` instead)."""
    return c.postgres_sources
