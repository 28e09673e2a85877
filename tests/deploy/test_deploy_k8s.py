"""`render_k8s`: manifests that the Kubernetes schema accepts, with the TEE each component's
pin asks for, no secret values, and network policies that allow exactly DESIGN.md's flows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from chronoseal.deploy import (
    ANALYSIS_INTAKE_PORT,
    DASK_SCHEDULER_PORT,
    DEFAULT_RESOURCES,
    HEALTH_PORT,
    PREDICTION_FEEDS_PORT,
    PREDICTION_FORECASTS_PORT,
    PREDICTION_HANDOVER_PORT,
    WORKER_ADMISSION_PORT,
    WORKER_DASK_PORT,
    DeployInput,
    K8sOptions,
    Resources,
    render_k8s,
)
from chronoseal.deploy._tee import placement
from chronoseal.errors import DeployError

K8S_VERSION = "1.31"
CONTRACT = "0x" + "12" * 20
CHAIN = "https://rpc.consortium.example:8545"
Doc = dict[str, Any]
Loader = Callable[[Path], DeployInput]


def options(**overrides: Any) -> K8sOptions:
    return K8sOptions(**{"chain_url": CHAIN, "contract": CONTRACT, **overrides})


def written_docs(tmp_path: Path, inp: DeployInput, opts: K8sOptions) -> dict[str, list[Doc]]:
    """Render, write, and read back every YAML file as a user's kubectl would."""
    out = tmp_path / "out"
    render_k8s(inp, opts).write(out)
    return {
        p.name: [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
        for p in sorted(out.glob("*.yaml"))
    }


def all_docs(files: dict[str, list[Doc]]) -> Iterator[Doc]:
    for docs in files.values():
        yield from docs


def workloads(files: dict[str, list[Doc]]) -> dict[str, Doc]:
    return {
        d["metadata"]["name"]: d
        for d in all_docs(files)
        if d["kind"] in ("Deployment", "StatefulSet")
    }


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


@pytest.fixture
def simulated(make_scenario: Callable[..., Path], load_input: Loader) -> DeployInput:
    return load_input(make_scenario())


@pytest.fixture
def hardware(make_scenario: Callable[..., Path], load_input: Loader) -> DeployInput:
    return load_input(make_scenario(gateway="sgx", analysis="tdx", prediction="sev-snp"))


@pytest.mark.parametrize("pins", ["simulated", "hardware"])
def test_every_document_validates_against_the_kubernetes_schema_strictly(
    pins: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    inp: DeployInput = request.getfixturevalue(pins)
    files = written_docs(tmp_path, inp, options())
    kinds = set()
    for doc in all_docs(files):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        kinds.add(doc["kind"])
    assert {"Namespace", "ConfigMap", "Service", "NetworkPolicy", "Deployment"} <= kinds
    assert "StatefulSet" in kinds


def test_one_file_per_component_plus_namespaces(simulated: DeployInput, tmp_path: Path) -> None:
    files = written_docs(tmp_path, simulated, options())
    assert sorted(files) == [
        "analysis.yaml",
        "gateway-events.yaml",
        "gateway-transit.yaml",
        "gateway-weather.yaml",
        "namespaces.yaml",
        "party-agent-events.yaml",
        "party-agent-transit.yaml",
        "party-agent-weather.yaml",
        "prediction.yaml",
    ]
    assert (tmp_path / "out" / "README.txt").read_text().count("kubectl apply -f") == 9
    # each gateway lives in its own party's namespace
    gw = workloads(files)["gateway-weather"]
    assert gw["metadata"]["namespace"] == "chronoseal-weather"
    assert workloads(files)["analysis"]["metadata"]["namespace"] == "chronoseal-runtime"


def test_rendering_is_deterministic(simulated: DeployInput) -> None:
    first = render_k8s(simulated, options()).files
    second = render_k8s(simulated, options()).files
    assert first == second


def test_tdx_and_snp_pins_pick_their_confidential_containers_runtime_class(
    hardware: DeployInput, tmp_path: Path
) -> None:
    w = workloads(written_docs(tmp_path, hardware, options()))
    assert pod_spec(w["analysis"])["runtimeClassName"] == "kata-qemu-tdx"
    assert pod_spec(w["prediction"])["runtimeClassName"] == "kata-qemu-snp"
    assert w["analysis"]["spec"]["template"]["metadata"]["labels"]["chronoseal.io/tee"] == "tdx"


def test_the_same_component_follows_its_pin(
    make_scenario: Callable[..., Path], load_input: Loader, tmp_path: Path
) -> None:
    inp = load_input(make_scenario(analysis="sev-snp", prediction="tdx"))
    w = workloads(written_docs(tmp_path, inp, options()))
    assert pod_spec(w["analysis"])["runtimeClassName"] == "kata-qemu-snp"
    assert pod_spec(w["prediction"])["runtimeClassName"] == "kata-qemu-tdx"


def test_sgx_components_use_the_sgx_device_plugin_not_a_coco_runtime_class(
    hardware: DeployInput, tmp_path: Path
) -> None:
    w = workloads(written_docs(tmp_path, hardware, options(image="reg.example/chronoseal:1")))
    spec = pod_spec(w["gateway-transit"])
    assert "runtimeClassName" not in spec
    container = spec["containers"][0]
    limits = container["resources"]["limits"]
    assert limits["sgx.intel.com/epc"] == "2Gi"
    assert limits["sgx.intel.com/enclave"] == "1"
    assert limits["sgx.intel.com/provision"] == "1"
    annotations = w["gateway-transit"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["sgx.intel.com/quote-provider"] == "aesmd"
    assert spec["nodeSelector"] == {"intel.feature.node.kubernetes.io/sgx": "true"}
    # the graminized image runs the argv measured into its manifest: no args from the host
    assert container["image"] == "gsc-reg.example/chronoseal:1"
    assert "args" not in container and "command" not in container
    env = {e["name"]: e for e in container["env"]}
    assert env["CHRONOSEAL_PARTY"]["value"] == "transit"
    assert env["CHRONOSEAL_RUNTIME"]["value"] == "analysis.chronoseal-runtime.svc:7443"
    # party agents are no TEE component, whatever the gateway's pin
    assert "runtimeClassName" not in pod_spec(w["party-agent-transit"])


def test_simulated_components_have_no_runtime_class_and_say_so_loudly(
    simulated: DeployInput, tmp_path: Path
) -> None:
    files = written_docs(tmp_path, simulated, options())
    w = workloads(files)
    for name in ("analysis", "prediction", "gateway-transit"):
        template = w[name]["spec"]["template"]
        assert "runtimeClassName" not in template["spec"]
        assert template["metadata"]["labels"]["chronoseal.io/tee"] == "simulated"
        assert "SIMULATED TEE" in template["metadata"]["annotations"]["chronoseal.io/warning"]
        assert (tmp_path / "out" / f"{name}.yaml").read_text().startswith("# ====")
    namespaces = {
        d["metadata"]["name"]: d for d in files["namespaces.yaml"] if d["kind"] == "Namespace"
    }
    assert (
        namespaces["chronoseal-runtime"]["metadata"]["labels"]["chronoseal.io/tee"] == "simulated"
    )
    rendered = render_k8s(simulated, options())
    assert any("SIMULATED TEE" in w for w in rendered.warnings)
    assert "SIMULATED TEE" in rendered.files["README.txt"]


def test_csv_and_cca_pins_pick_their_confidential_containers_runtime_class(
    make_scenario: Callable[..., Path], load_input: Loader, tmp_path: Path
) -> None:
    inp = load_input(make_scenario(analysis="csv", prediction="cca"))
    w = workloads(written_docs(tmp_path, inp, options()))
    assert pod_spec(w["analysis"])["runtimeClassName"] == "kata-qemu-csv"
    assert pod_spec(w["prediction"])["runtimeClassName"] == "kata-qemu-cca"
    assert w["prediction"]["spec"]["template"]["metadata"]["labels"]["chronoseal.io/tee"] == "cca"


def test_a_tee_chronoseal_cannot_deploy_is_refused_with_its_id() -> None:
    with pytest.raises(DeployError) as caught:
        placement("trustzone", "prediction")
    assert caught.value.id == "deploy.tee.unsupported"
    assert "prediction" in caught.value.message and "trustzone" in caught.value.message


def test_no_secret_values_only_references(simulated: DeployInput, tmp_path: Path) -> None:
    files = written_docs(tmp_path, simulated, options())
    assert not [d for d in all_docs(files) if d["kind"] == "Secret"]
    referenced = set()
    for name, w in workloads(files).items():
        spec = pod_spec(w)
        for volume in spec["volumes"]:
            if "secret" in volume:
                referenced.add(volume["secret"]["secretName"])
        for e in spec["containers"][0]["env"]:
            assert "value" in e or "valueFrom" in e
            if e["name"] == "CHRONOSEAL_KEY_PASSWORD":
                assert "value" not in e
                assert e["valueFrom"]["secretKeyRef"] == {
                    "name": f"{name}-keystore",
                    "key": "password",
                }
            if "secretKeyRef" in e.get("valueFrom", {}):
                referenced.add(e["valueFrom"]["secretKeyRef"]["name"])
    assert referenced == {f"{name}-keystore" for name in workloads(files)}
    # ConfigMaps carry the spec, the party config and the chain, nothing else
    for doc in all_docs(files):
        if doc["kind"] == "ConfigMap":
            assert set(doc["data"]) <= {"task.toml", "party.toml", "chain-url", "contract"}
            assert doc["data"]["chain-url"] == CHAIN and doc["data"]["contract"] == CONTRACT


def test_a_password_in_a_party_source_url_is_refused(
    make_scenario: Callable[..., Path], load_input: Loader
) -> None:
    url = "postgresql://reader:hunter2@tsdb:5433/weather?table=public.daily"
    inp = load_input(make_scenario(sources={"weather": f'daily_weather = "{url}"'}))
    with pytest.raises(DeployError) as caught:
        render_k8s(inp, options())
    assert caught.value.id == "deploy.secret.in_config"
    assert "hunter2" not in str(caught.value)


def test_a_postgres_source_reads_its_password_from_a_secret_and_may_reach_its_tsdb(
    make_scenario: Callable[..., Path], load_input: Loader, tmp_path: Path
) -> None:
    url = "postgresql://reader@tsdb:5433/weather?table=public.daily"
    inp = load_input(make_scenario(sources={"weather": f'daily_weather = "{url}"'}))
    files = written_docs(tmp_path, inp, options())
    gw = workloads(files)["gateway-weather"]
    env = {e["name"]: e for e in pod_spec(gw)["containers"][0]["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "gateway-weather-tsdb"
    assert "data" not in {v["name"] for v in pod_spec(gw)["volumes"]}  # no file sources
    flows = next(d for d in files["gateway-weather.yaml"] if d["kind"] == "NetworkPolicy")
    tsdb = [r for r in flows["spec"]["egress"] if r["ports"][0]["port"] == 5433]
    assert tsdb == [
        {
            "to": [{"podSelector": {"matchLabels": {"chronoseal.io/tsdb": "gateway-weather"}}}],
            "ports": [{"protocol": "TCP", "port": 5433}],
        }
    ]


def test_a_file_source_outside_the_mounted_data_directory_is_refused(
    make_scenario: Callable[..., Path], load_input: Loader
) -> None:
    inp = load_input(make_scenario(sources={"events": 'home_games = "parquet:/home/me/g.parquet"'}))
    with pytest.raises(DeployError) as caught:
        render_k8s(inp, options())
    assert caught.value.id == "deploy.party.data_path"


@pytest.mark.parametrize(
    ("overrides", "error_id"),
    [
        ({"contract": "0x1234"}, "deploy.contract.invalid"),
        ({"chain_url": "rpc.example:8545"}, "deploy.chain.invalid"),
        ({"storage": "lots"}, "deploy.resources.invalid"),
        ({"storage": "9" * 40}, "deploy.resources.invalid"),
        ({"storage": "0"}, "deploy.resources.out_of_range"),
        ({"storage": "999999Ti"}, "deploy.resources.out_of_range"),
        ({"image": "bad image"}, "deploy.image.invalid"),
    ],
)
def test_bad_options_are_refused(
    overrides: dict[str, str], error_id: str, simulated: DeployInput
) -> None:
    with pytest.raises(DeployError) as caught:
        render_k8s(simulated, options(**overrides))
    assert caught.value.id == error_id


def test_without_a_contract_the_config_maps_say_set_me(simulated: DeployInput) -> None:
    rendered = render_k8s(simulated, K8sOptions(chain_url=CHAIN))
    assert "SET-ME-consortium-contract-address" in rendered.files["analysis.yaml"]
    assert any("--contract" in w for w in rendered.warnings)


def test_workloads_probes_security_and_state(simulated: DeployInput, tmp_path: Path) -> None:
    w = workloads(written_docs(tmp_path, simulated, options()))
    assert {n for n, d in w.items() if d["kind"] == "StatefulSet"} == {
        "analysis",
        "gateway-events",
        "gateway-transit",
        "gateway-weather",
        "party-agent-events",  # block cursor and decisions
        "party-agent-transit",
        "party-agent-weather",
    }
    for d in w.values():
        spec = pod_spec(d)
        (container,) = spec["containers"]
        health = {p["name"]: p["containerPort"] for p in container["ports"]}["health"]
        assert health == HEALTH_PORT
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"]
        assert sc["capabilities"] == {"drop": ["ALL"]} and not sc["allowPrivilegeEscalation"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        if d["kind"] == "StatefulSet":
            claim = d["spec"]["volumeClaimTemplates"][0]
            assert claim["metadata"]["name"] == "state"
            assert "/var/lib/chronoseal" in [m["mountPath"] for m in container["volumeMounts"]]
    prediction_ports = {
        p["name"]: p["containerPort"] for p in pod_spec(w["prediction"])["containers"][0]["ports"]
    }
    assert prediction_ports == {
        "handover": PREDICTION_HANDOVER_PORT,
        "feeds": PREDICTION_HANDOVER_PORT + 1,
        "forecasts": PREDICTION_HANDOVER_PORT + 2,
        "health": HEALTH_PORT,
    }
    args = pod_spec(w["prediction"])["containers"][0]["args"]
    assert args[args.index("--listen") + 1] == f"0.0.0.0:{PREDICTION_HANDOVER_PORT}"


# --- network policies ----------------------------------------------------------------------


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels is evaluated here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


class Cluster:
    """Evaluates NetworkPolicy semantics for the rendered pods (matchLabels only)."""

    def __init__(self, files: dict[str, list[Doc]]) -> None:
        docs = list(all_docs(files))
        self.namespaces = {
            d["metadata"]["name"]: {
                **d["metadata"].get("labels", {}),
                "kubernetes.io/metadata.name": d["metadata"]["name"],
            }
            for d in docs
            if d["kind"] == "Namespace"
        }
        self.pods = {
            name: (d["metadata"]["namespace"], d["spec"]["template"]["metadata"]["labels"], d)
            for name, d in workloads(files).items()
        }
        self.policies = [d for d in docs if d["kind"] == "NetworkPolicy"]

    def _peer_matches(self, peer: Doc, policy_ns: str, pod: str) -> bool:
        ns, labels, _ = self.pods[pod]
        if "ipBlock" in peer:
            return False
        if "namespaceSelector" in peer:
            ns_ok = _selects(peer["namespaceSelector"], self.namespaces[ns])
        else:
            ns_ok = ns == policy_ns
        return ns_ok and _selects(peer.get("podSelector", {}), labels)

    def _allowed(self, direction: str, subject: str, other: str, port: int) -> bool:
        ns, labels, _ = self.pods[subject]
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in self.policies:
            spec = policy["spec"]
            if policy["metadata"]["namespace"] != ns or direction not in spec["policyTypes"]:
                continue
            if not _selects(spec["podSelector"], labels):
                continue
            for rule in spec.get(key, []):
                peers = rule.get(peers_key)
                ports = rule.get("ports")
                peer_ok = peers is None or any(self._peer_matches(p, ns, other) for p in peers)
                port_ok = ports is None or any(
                    p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports
                )
                if peer_ok and port_ok:
                    return True
        return False

    def flows(self, direction: str | None = None) -> set[tuple[str, str, int]]:
        """(source, destination, port) pairs both ends allow, or only ``direction``'s end."""
        allowed = set()
        for dst, (_, _, workload) in self.pods.items():
            ports = [p["containerPort"] for p in pod_spec(workload)["containers"][0]["ports"]]
            for src in self.pods:
                for port in ports:
                    out = self._allowed("Egress", src, dst, port)
                    into = self._allowed("Ingress", dst, src, port)
                    ok = {"Egress": out, "Ingress": into, None: out and into}[direction]
                    if src != dst and ok:
                        allowed.add((src, dst, port))
        return allowed


def test_network_policies_allow_exactly_the_designed_flows(
    simulated: DeployInput, tmp_path: Path
) -> None:
    files = written_docs(tmp_path, simulated, options())
    gateways = ["gateway-events", "gateway-transit", "gateway-weather"]
    expected = {
        *((g, "analysis", ANALYSIS_INTAKE_PORT) for g in gateways),
        *((g, "prediction", PREDICTION_FEEDS_PORT) for g in gateways),
        ("analysis", "prediction", PREDICTION_HANDOVER_PORT),
        # [release] forecasts.to = transit, events: the weather service may not ask
        ("party-agent-transit", "prediction", PREDICTION_FORECASTS_PORT),
        ("party-agent-events", "prediction", PREDICTION_FORECASTS_PORT),
    }
    cluster = Cluster(files)
    assert cluster.flows() == expected
    # each end on its own is as tight: one namespace's policies do not lean on the other's
    assert cluster.flows("Egress") == expected
    assert cluster.flows("Ingress") == expected


def test_every_namespace_denies_by_default_and_allows_dns_and_the_chain(
    simulated: DeployInput, tmp_path: Path
) -> None:
    files = written_docs(tmp_path, simulated, options())
    policies = [d for d in files["namespaces.yaml"] if d["kind"] == "NetworkPolicy"]
    namespaces = [
        d["metadata"]["name"] for d in files["namespaces.yaml"] if d["kind"] == "Namespace"
    ]
    assert namespaces == [
        "chronoseal-events",
        "chronoseal-runtime",
        "chronoseal-transit",
        "chronoseal-weather",
    ]
    for ns in namespaces:
        mine = {
            p["metadata"]["name"]: p["spec"] for p in policies if p["metadata"]["namespace"] == ns
        }
        assert mine["default-deny"] == {
            "podSelector": {},
            "ingress": [],
            "egress": [],
            "policyTypes": ["Ingress", "Egress"],
        }
        (dns,) = mine["allow-dns"]["egress"]
        assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
        assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [
            ("TCP", 53),
            ("UDP", 53),
        ]
        assert mine["allow-chain-rpc"]["egress"] == [{"ports": [{"protocol": "TCP", "port": 8545}]}]
        assert mine["allow-chain-rpc"]["policyTypes"] == ["Egress"]
    # no component policy opens anything else to the whole namespace or to any address
    for doc in all_docs(files):
        if doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"].endswith("-flows"):
            assert doc["spec"]["podSelector"]["matchLabels"]
            for rule in doc["spec"].get("egress", []) + doc["spec"].get("ingress", []):
                assert rule.get("to") or rule.get("from")
                assert rule["ports"]


@pytest.mark.parametrize(
    ("cpu", "memory", "error_id"),
    [
        ("0", "1Gi", "deploy.resources.out_of_range"),
        ("100000", "1Gi", "deploy.resources.out_of_range"),
        ("1", "0", "deploy.resources.out_of_range"),
        ("1", "999999999999Ti", "deploy.resources.out_of_range"),
        ("1" * 30, "1Gi", "deploy.resources.invalid"),
    ],
)
def test_resource_quantities_are_bounded(
    cpu: str, memory: str, error_id: str, simulated: DeployInput
) -> None:
    resources = {kind: Resources(cpu, memory, cpu, memory) for kind in DEFAULT_RESOURCES}
    with pytest.raises(DeployError) as caught:
        render_k8s(simulated, options(resources=resources))
    assert caught.value.id == error_id


@pytest.fixture
def with_workers(make_scenario: Callable[..., Path], load_input: Loader) -> DeployInput:
    """The hardware pins, the workers pinned to SEV-SNP, and ``[compute] workers = 3``."""
    scenario = make_scenario(gateway="sgx", analysis="tdx", prediction="sev-snp")
    task = scenario.parent / "task.toml"
    task.write_text(
        task.read_text().replace(
            'analysis_worker = { tee = "simulated", value = "installed" }',
            f'analysis_worker = {{ tee = "sev-snp", value = "{"cd" * 32}" }}',
        )
    )
    scenario.write_text(scenario.read_text() + "\n[compute]\nworkers = 3\n")
    return load_input(scenario)


def test_workers_are_a_statefulset_in_their_tee_that_the_runtime_reaches_by_name(
    with_workers: DeployInput, tmp_path: Path
) -> None:
    files = written_docs(tmp_path, with_workers, options())
    for doc in all_docs(files):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert [d["kind"] for d in files["analysis-worker.yaml"]] == [
        "Service",
        "StatefulSet",
        "NetworkPolicy",
    ]
    w = workloads(files)
    worker = w["analysis-worker"]
    assert worker["spec"]["replicas"] == 3 and "volumeClaimTemplates" not in worker["spec"]
    assert worker["metadata"]["namespace"] == "chronoseal-runtime"
    pod = pod_spec(worker)
    assert pod["runtimeClassName"] == "kata-qemu-snp"
    (container,) = pod["containers"]
    assert container["args"] == [
        "analysis",
        "worker",
        "--listen",
        f"0.0.0.0:{WORKER_ADMISSION_PORT}",
        "--dask-port",
        str(WORKER_DASK_PORT),
        "--contact",
        "$(CHRONOSEAL_POD_NAME).analysis-worker.chronoseal-runtime.svc",
    ]
    # no chain key, no task spec: the runtime posts each worker's attestation itself
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert "secretKeyRef" not in str(container["env"])
    service = next(d for d in files["analysis-worker.yaml"] if d["kind"] == "Service")
    assert service["spec"]["clusterIP"] == "None"
    args = pod_spec(w["analysis"])["containers"][0]["args"]
    reach = [args[i + 1] for i, a in enumerate(args) if a == "--worker-at"]
    assert reach == [
        f"analysis-worker-{i}.analysis-worker.chronoseal-runtime.svc:{WORKER_ADMISSION_PORT}"
        for i in range(3)
    ]
    assert args[args.index("--dask-listen") + 1] == f"0.0.0.0:{DASK_SCHEDULER_PORT}"
    assert args[args.index("--dask-contact") + 1] == "analysis.chronoseal-runtime.svc"
    readme = (tmp_path / "out" / "README.txt").read_text()
    assert "analysis-worker: tee sev-snp, kata-qemu-snp, StatefulSet x 3" in readme
    assert "keystore-analysis-worker" not in readme and "analysis-worker-keystore" not in readme


def test_network_policies_open_exactly_scheduler_worker_flows(
    with_workers: DeployInput, tmp_path: Path
) -> None:
    files = written_docs(tmp_path, with_workers, options())
    cluster = Cluster(files)
    gateways = ["gateway-events", "gateway-transit", "gateway-weather"]
    expected = {
        *((g, "analysis", ANALYSIS_INTAKE_PORT) for g in gateways),
        *((g, "prediction", PREDICTION_FEEDS_PORT) for g in gateways),
        ("analysis", "prediction", PREDICTION_HANDOVER_PORT),
        ("party-agent-transit", "prediction", PREDICTION_FORECASTS_PORT),
        ("party-agent-events", "prediction", PREDICTION_FORECASTS_PORT),
        ("analysis", "analysis-worker", WORKER_ADMISSION_PORT),
        ("analysis", "analysis-worker", WORKER_DASK_PORT),
        ("analysis-worker", "analysis", DASK_SCHEDULER_PORT),
    }
    assert cluster.flows() == expected
    assert cluster.flows("Egress") == expected
    assert cluster.flows("Ingress") == expected
    # worker to worker: closed at both ends (each worker admits only the scheduler's
    # certificate, so no Dask connection between workers is ever made)
    for port in (WORKER_ADMISSION_PORT, WORKER_DASK_PORT, DASK_SCHEDULER_PORT):
        assert not cluster._allowed("Egress", "analysis-worker", "analysis-worker", port)
        assert not cluster._allowed("Ingress", "analysis-worker", "analysis-worker", port)


def test_sgx_workers_are_refused_with_their_id(
    make_scenario: Callable[..., Path], load_input: Loader
) -> None:
    scenario = make_scenario()
    task = scenario.parent / "task.toml"
    task.write_text(
        task.read_text().replace(
            'analysis_worker = { tee = "simulated", value = "installed" }',
            f'analysis_worker = {{ tee = "sgx", value = "{"cd" * 32}" }}',
        )
    )
    scenario.write_text(scenario.read_text() + "\n[compute]\nworkers = 2\n")
    with pytest.raises(DeployError) as info:
        render_k8s(load_input(scenario), options())
    assert info.value.id == "deploy.tee.unsupported"
    assert info.value.context["component"] == "analysis_worker"
