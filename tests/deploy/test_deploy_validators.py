"""`render_k8s` with the members' validators (``--validators``): one validator StatefulSet per
founding member in its own namespace, its keys only referenced, the genesis from the members'
signers, static peers by stable DNS names, policies that open exactly p2p between validators
and RPC from each node's own users; without validators the output is unchanged."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli_deploy import expand, parse_command_line
from test_deploy_k8s import (
    CHAIN,
    K8S_VERSION,
    Cluster,
    all_docs,
    options,
    pod_spec,
    workloads,
    written_docs,
)
from typer.testing import CliRunner

from chronoseal.cli import app
from chronoseal.deploy import (
    ANALYSIS_INTAKE_PORT,
    DASK_SCHEDULER_PORT,
    PREDICTION_FEEDS_PORT,
    PREDICTION_FORECASTS_PORT,
    PREDICTION_HANDOVER_PORT,
    VALIDATOR_P2P_PORT,
    VALIDATOR_RPC_PORT,
    WORKER_ADMISSION_PORT,
    WORKER_DASK_PORT,
    DeployInput,
    parse_validators,
    render_k8s,
)
from chronoseal.errors import ChronosealError, DeployError
from chronoseal.ledger import ValidatorKeys, new_validator_keys, validator_node_command

MEMBERS = ("transit", "weather", "events")  # the Chicago scenario's [consortium] order
Doc = dict[str, Any]
Loader = Callable[[Path], DeployInput]
runner = CliRunner()


def validators_text(keys: dict[str, ValidatorKeys], period: int = 2) -> str:
    lines = [f"period = {period}", ""]
    for member, k in keys.items():
        lines += [f"[members.{member}]", f'signer = "{k.signer}"', f'node_id = "{k.node_id}"', ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each member's ``signer.key`` and ``node.key``, as ``chain validator-key`` makes them."""
    root = tmp_path_factory.mktemp("validator-keys")
    for m in MEMBERS:
        new_validator_keys(root / m)
    return root


@pytest.fixture(scope="module")
def member_keys(key_dir: Path) -> dict[str, ValidatorKeys]:
    from chronoseal.ledger._validators import node_id_of

    return {
        m: ValidatorKeys(
            signer=Account.from_key((key_dir / m / "signer.key").read_text()).address,
            node_id=node_id_of((key_dir / m / "node.key").read_text()),
        )
        for m in MEMBERS
    }


def with_validators(inp: DeployInput, text: str) -> DeployInput:
    return DeployInput(
        spec=inp.spec,
        spec_text=inp.spec_text,
        parties=inp.parties,
        workers=inp.workers,
        members=MEMBERS,
        validators=parse_validators(text),
    )


@pytest.fixture
def plain(make_scenario: Callable[..., Path], load_input: Loader) -> DeployInput:
    return load_input(make_scenario())


@pytest.fixture
def members_input(plain: DeployInput, member_keys: dict[str, ValidatorKeys]) -> DeployInput:
    return with_validators(plain, validators_text(member_keys))


def validator_docs(files: dict[str, list[Doc]]) -> dict[str, Doc]:
    return {n: d for n, d in workloads(files).items() if n.startswith("validator-")}


def config_maps(files: dict[str, list[Doc]]) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in all_docs(files) if d["kind"] == "ConfigMap"}


def test_one_validator_statefulset_per_member_in_its_namespace_and_schema_valid(
    members_input: DeployInput, tmp_path: Path
) -> None:
    files = written_docs(tmp_path, members_input, options())
    for doc in all_docs(files):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    validators = validator_docs(files)
    assert sorted(validators) == [f"validator-{m}" for m in sorted(MEMBERS)]
    for member in MEMBERS:
        v = validators[f"validator-{member}"]
        assert v["kind"] == "StatefulSet" and v["spec"]["replicas"] == 1
        assert v["metadata"]["namespace"] == f"chronoseal-{member}"  # beside its own gateway
        assert workloads(files)[f"gateway-{member}"]["metadata"]["namespace"] == (
            f"chronoseal-{member}"
        )
        (claim,) = v["spec"]["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == "state"
        (container,) = pod_spec(v)["containers"]
        assert container["command"] == ["chronoseal"]
        assert container["image"] == options().image  # the image every component runs
        assert {m["mountPath"]: m["name"] for m in container["volumeMounts"]}[
            "/var/lib/chronoseal"
        ] == "state"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"p2p": VALIDATOR_P2P_PORT, "rpc": VALIDATOR_RPC_PORT}
        assert container["readinessProbe"]["tcpSocket"] == {"port": "rpc"}
        assert "runtimeClassName" not in pod_spec(v)  # a member's node, not a TEE component
    service = next(d for d in files["validator-weather.yaml"] if d["kind"] == "Service")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True  # peers link before ready
    readme = (tmp_path / "out" / "README.txt").read_text()
    assert readme.index("kubectl apply -f validator-transit.yaml") < readme.index(
        "kubectl apply -f analysis.yaml"
    )


def test_the_keys_are_secret_references_never_in_a_manifest(
    members_input: DeployInput, key_dir: Path, tmp_path: Path
) -> None:
    files = written_docs(tmp_path, members_input, options())
    rendered = "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    for member in MEMBERS:
        for name in ("signer.key", "node.key"):
            secret = (key_dir / member / name).read_text()
            assert len(secret) == 64 and secret not in rendered
    assert not [d for d in all_docs(files) if d["kind"] == "Secret"]
    v = validator_docs(files)["validator-events"]
    volumes = {vol["name"]: vol for vol in pod_spec(v)["volumes"]}
    assert volumes["keys"]["secret"]["secretName"] == "validator-events-keys"
    assert [i["key"] for i in volumes["keys"]["secret"]["items"]] == ["signer.key", "node.key"]
    assert "keystore" not in volumes  # it holds no chronoseal chain key
    (container,) = pod_spec(v)["containers"]
    assert all("value" in e or "fieldRef" in e.get("valueFrom", {}) for e in container["env"])
    readme = (tmp_path / "out" / "README.txt").read_text()
    assert (
        "kubectl -n chronoseal-events create secret generic validator-events-keys "
        "--from-file=signer.key=PATH --from-file=node.key=PATH"
    ) in readme


def test_the_genesis_lists_every_members_signer_and_is_the_same_everywhere(
    members_input: DeployInput, member_keys: dict[str, ValidatorKeys], tmp_path: Path
) -> None:
    files = written_docs(tmp_path, members_input, options())
    maps = config_maps(files)
    texts = {maps[f"validator-{m}-config"]["data"]["consortium.json"] for m in MEMBERS}
    (text,) = texts  # one genesis, byte for byte, in every member's namespace
    genesis = json.loads(text)
    extra = bytes.fromhex(genesis["extraData"][2:])
    listed = [extra[32 + 20 * i : 52 + 20 * i] for i in range((len(extra) - 97) // 20)]
    assert listed == sorted(bytes.fromhex(k.signer[2:]) for k in member_keys.values())
    assert genesis["config"]["clique"]["period"] == 2 and genesis["config"]["chainId"] == 4242
    assert set(genesis["alloc"]) == {k.signer[2:].lower() for k in member_keys.values()}


def test_each_validator_dials_the_later_ones_by_stable_dns_name_with_the_real_cli(
    members_input: DeployInput, member_keys: dict[str, ValidatorKeys], tmp_path: Path
) -> None:
    files = written_docs(tmp_path, members_input, options())
    validators = validator_docs(files)
    dialled: set[frozenset[str]] = set()
    for i, member in enumerate(MEMBERS):
        (container,) = pod_spec(validators[f"validator-{member}"])["containers"]
        env = {"CHRONOSEAL_POD_IP": "10.0.0.7"}
        ctx = parse_command_line([expand(a, env) for a in container["args"]])
        assert ctx.params["genesis"] == Path("/srv/chronoseal/chain/consortium.json")
        assert ctx.params["signer_key_file"] == Path(
            "/var/run/secrets/chronoseal/validator/signer.key"
        )
        assert ctx.params["rpc_listen"] == f"0.0.0.0:{VALIDATOR_RPC_PORT}"
        assert ctx.params["ext_ip"] == "10.0.0.7"
        later = MEMBERS[i + 1 :]
        assert list(ctx.params["static_peer"] or []) == [
            f"{member_keys[o].node_id}@validator-{o}-0.validator-{o}.chronoseal-{o}.svc:"
            f"{VALIDATOR_P2P_PORT}"
            for o in later
        ]
        dialled |= {frozenset((member, o)) for o in later}
    assert len(dialled) == 3  # every pair linked, by one dialler


def test_each_party_uses_its_own_node_and_the_runtimes_every_node(
    members_input: DeployInput, tmp_path: Path
) -> None:
    files = written_docs(tmp_path, members_input, options())
    maps = config_maps(files)

    def url(m: str) -> str:
        return f"http://validator-{m}.chronoseal-{m}.svc:{VALIDATOR_RPC_PORT}"

    for member in MEMBERS:
        for component in (f"gateway-{member}", f"party-agent-{member}"):
            assert maps[f"{component}-config"]["data"]["chain-url"] == url(member)
    # the runtimes fail over across every member's node, starting at different ones
    assert maps["analysis-config"]["data"]["chain-url"] == ",".join(url(m) for m in MEMBERS)
    assert maps["prediction-config"]["data"]["chain-url"] == ",".join(
        url(m) for m in ("weather", "events", "transit")
    )
    # the chain is inside the cluster now: no namespace-wide egress to anywhere on its port
    names = {d["metadata"]["name"] for d in files["namespaces.yaml"]}
    assert "allow-chain-rpc" not in names and {"default-deny", "allow-dns"} <= names
    assert any("--chain-url" in w for w in render_k8s(members_input, options()).warnings)


def test_policies_open_exactly_p2p_between_validators_and_rpc_from_their_users(
    members_input: DeployInput, tmp_path: Path
) -> None:
    files = written_docs(tmp_path, members_input, options())
    gateways = [f"gateway-{m}" for m in MEMBERS]
    validators = [f"validator-{m}" for m in MEMBERS]
    expected = {
        *((g, "analysis", ANALYSIS_INTAKE_PORT) for g in gateways),
        *((g, "prediction", PREDICTION_FEEDS_PORT) for g in gateways),
        ("analysis", "prediction", PREDICTION_HANDOVER_PORT),
        ("party-agent-transit", "prediction", PREDICTION_FORECASTS_PORT),
        ("party-agent-events", "prediction", PREDICTION_FORECASTS_PORT),
        *((a, b, VALIDATOR_P2P_PORT) for a in validators for b in validators if a != b),
        *((f"gateway-{m}", f"validator-{m}", VALIDATOR_RPC_PORT) for m in MEMBERS),
        *((f"party-agent-{m}", f"validator-{m}", VALIDATOR_RPC_PORT) for m in MEMBERS),
        *((r, v, VALIDATOR_RPC_PORT) for r in ("analysis", "prediction") for v in validators),
    }
    cluster = Cluster(files)
    assert cluster.flows() == expected
    assert cluster.flows("Egress") == expected
    assert cluster.flows("Ingress") == expected
    # another member's components cannot reach a node's RPC, at either end
    assert not cluster._allowed("Egress", "gateway-weather", "validator-transit", 8545)
    assert not cluster._allowed("Ingress", "validator-transit", "party-agent-events", 8545)


def test_workers_get_no_chain_access(
    make_scenario: Callable[..., Path],
    load_input: Loader,
    member_keys: dict[str, ValidatorKeys],
    tmp_path: Path,
) -> None:
    scenario = make_scenario(analysis="tdx")
    task = scenario.parent / "task.toml"
    task.write_text(
        task.read_text().replace(
            'analysis_worker = { tee = "simulated", value = "installed" }',
            f'analysis_worker = {{ tee = "tdx", value = "{"cd" * 32}" }}',
        )
    )
    scenario.write_text(scenario.read_text() + "\n[compute]\nworkers = 2\n")
    inp = with_validators(load_input(scenario), validators_text(member_keys))
    cluster = Cluster(written_docs(tmp_path, inp, options()))
    flows = cluster.flows()
    assert ("analysis-worker", "analysis", DASK_SCHEDULER_PORT) in flows
    assert ("analysis", "analysis-worker", WORKER_ADMISSION_PORT) in flows
    assert ("analysis", "analysis-worker", WORKER_DASK_PORT) in flows
    assert not [f for f in flows if f[0] == "analysis-worker" and f[1].startswith("validator-")]
    for v in (f"validator-{m}" for m in MEMBERS):
        assert not cluster._allowed("Egress", "analysis-worker", v, VALIDATOR_RPC_PORT)


def test_without_validators_the_output_is_what_it_was(plain: DeployInput, tmp_path: Path) -> None:
    members_only = DeployInput(
        spec=plain.spec,
        spec_text=plain.spec_text,
        parties=plain.parties,
        members=MEMBERS,
    )
    assert render_k8s(members_only, options()).files == render_k8s(plain, options()).files
    files = written_docs(tmp_path, members_only, options())
    assert not [n for n in files if n.startswith("validator-")]
    assert all(m["data"]["chain-url"] == CHAIN for m in config_maps(files).values())
    policies = [d["metadata"]["name"] for d in files["namespaces.yaml"]]
    assert policies.count("allow-chain-rpc") == 4


# --- refusals ------------------------------------------------------------------------------


def _entries(keys: dict[str, ValidatorKeys]) -> dict[str, dict[str, str]]:
    return {m: {"signer": k.signer, "node_id": k.node_id} for m, k in keys.items()}


def _toml(entries: dict[str, dict[str, str]], head: str = "") -> str:
    body = "".join(
        f"[members.{m}]\n" + "".join(f'{k} = "{v}"\n' for k, v in e.items())
        for m, e in entries.items()
    )
    return head + body


def test_a_member_without_a_validator_is_refused(
    plain: DeployInput, member_keys: dict[str, ValidatorKeys]
) -> None:
    entries = _entries(member_keys)
    del entries["weather"]
    with pytest.raises(DeployError) as caught:
        render_k8s(with_validators(plain, _toml(entries)), options())
    assert caught.value.id == "deploy.validators.member_missing"
    assert caught.value.context["member"] == "weather"
    entries = _entries(member_keys)
    del entries["events"]["signer"]
    with pytest.raises(DeployError) as caught:
        parse_validators(_toml(entries))
    assert caught.value.id == "deploy.validators.member_missing"


@pytest.mark.parametrize(
    ("signer", "why"),
    [
        ("0x1234", "too short"),
        ("ca063d76b5ada2199ca59935a3ee5bdb7124952e", "no 0x"),
        ("0x" + "g" * 40, "not hex"),
        ("0xCa063D76b5AdA2199CA59935A3Ee5bDb7124952E", "mixed case, wrong EIP-55 checksum"),
    ],
)
def test_a_malformed_signer_address_is_refused(
    member_keys: dict[str, ValidatorKeys], signer: str, why: str
) -> None:
    entries = _entries(member_keys)
    entries["transit"]["signer"] = signer
    with pytest.raises(DeployError) as caught:
        parse_validators(_toml(entries))
    assert caught.value.id == "deploy.validators.signer_invalid", why
    assert caught.value.context["member"] == "transit"


def test_a_valid_checksum_and_all_lower_case_are_accepted(
    member_keys: dict[str, ValidatorKeys],
) -> None:
    entries = _entries(member_keys)
    entries["events"]["signer"] = entries["events"]["signer"].lower()
    parsed = parse_validators(_toml(entries))
    assert parsed.members["transit"].signer == member_keys["transit"].signer.lower()


def test_a_node_id_off_the_curve_is_refused(member_keys: dict[str, ValidatorKeys]) -> None:
    entries = _entries(member_keys)
    entries["weather"]["node_id"] = "01" * 64  # 128 hex digits, but no secp256k1 point
    with pytest.raises(DeployError) as caught:
        parse_validators(_toml(entries))
    assert caught.value.id == "deploy.validators.node_id_invalid"


@pytest.mark.parametrize(
    "change",
    ["unknown member", "shared signer", "bad period", "not toml", "unknown key", "no members"],
)
def test_an_inconsistent_validators_file_is_refused(
    plain: DeployInput, member_keys: dict[str, ValidatorKeys], change: str
) -> None:
    entries = _entries(member_keys)
    head = ""
    if change == "unknown member":
        entries["stranger"] = dict(entries["transit"])
        entries["stranger"]["signer"] = Account.create().address
        entries["stranger"]["node_id"] = new_node_id()
    elif change == "shared signer":
        entries["weather"]["signer"] = entries["transit"]["signer"]
    elif change == "bad period":
        head = "period = 0\n"
    elif change == "unknown key":
        head = "peers = 3\n"
    text = _toml(entries, head)
    if change == "not toml":
        text = "[members.transit\n"
    elif change == "no members":
        text = "period = 2\n"
    with pytest.raises(DeployError) as caught:
        render_k8s(with_validators(plain, text), options())
    assert caught.value.id == "deploy.validators.invalid"


def new_node_id() -> str:
    from chronoseal.ledger._validators import node_id_of

    return node_id_of("11" * 32)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_with_an_id(text: str) -> None:
    try:
        parse_validators(text)
    except DeployError as exc:
        assert exc.id.startswith("deploy.validators.")


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_renders_validators_from_a_file_of_validator_key_output(tmp_path: Path) -> None:
    lines = ["period = 1"]
    for member in MEMBERS:
        made = runner.invoke(app, ["chain", "validator-key", str(tmp_path / "keys" / member)])
        assert made.exit_code == 0, made.output
        lines += [f"[members.{member}]", made.output]
        for name in ("signer.key", "node.key"):
            assert (tmp_path / "keys" / member / name).stat().st_mode & 0o777 == 0o600
    again = runner.invoke(app, ["chain", "validator-key", str(tmp_path / "keys" / "transit")])
    assert again.exit_code == 2 and "[ledger.validators.key_exists]" in again.output
    (tmp_path / "validators.toml").write_text("\n".join(lines))
    out = tmp_path / "k8s"
    result = runner.invoke(
        app,
        ["deploy", "render", "--target", "k8s", "--out", str(out),
         "--validators", str(tmp_path / "validators.toml")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {"validator-transit.yaml", "validator-weather.yaml", "validator-events.yaml"} <= {
        p.name for p in out.iterdir()
    }
    assert "--chain-url" not in result.output  # the default is not used, so no warning for it
    (tmp_path / "validators.toml").write_text("\n".join(lines[:3]))  # transit only
    refused = runner.invoke(
        app,
        ["deploy", "render", "--target", "k8s", "--out", str(tmp_path / "o2"),
         "--validators", str(tmp_path / "validators.toml")],
    )  # fmt: skip
    assert refused.exit_code == 2
    assert "[deploy.validators.member_missing]" in refused.output


# --- the pod's command, on the real client ------------------------------------------------------


def test_a_signer_key_the_genesis_does_not_list_is_refused(
    members_input: DeployInput, key_dir: Path, tmp_path: Path
) -> None:
    files = render_k8s(members_input, options()).files
    doc = next(d for d in yaml.safe_load_all(files["validator-transit.yaml"]) if d)
    genesis = tmp_path / "consortium.json"
    genesis.write_text(doc["data"]["consortium.json"])
    new_validator_keys(tmp_path / "stranger")
    with pytest.raises(ChronosealError) as caught:
        validator_node_command(
            genesis=genesis,
            data_dir=tmp_path / "data",
            signer_key_file=tmp_path / "stranger" / "signer.key",
            node_key_file=key_dir / "transit" / "node.key",
            static_peers=[],
            p2p_port=30303,
            rpc_addr="127.0.0.1",
            rpc_port=8545,
            ext_ip="127.0.0.1",
            binary="/nonexistent/ethereumjs",
        )
    assert caught.value.id == "ledger.validators.signer"
    assert not (tmp_path / "data").exists()  # refused before anything is written


@pytest.mark.parametrize(
    ("breakage", "error_id"),
    [
        ("genesis without signers", "ledger.validators.genesis"),
        ("genesis not json", "ledger.validators.genesis"),
        ("node key not hex", "ledger.validators.node_key"),
        ("peer without node id", "ledger.validators.peer_invalid"),
        ("no client", "ledger.validators.client_missing"),
    ],
)
def test_the_pod_command_refuses_what_would_not_make_a_validator(
    members_input: DeployInput, key_dir: Path, tmp_path: Path, breakage: str, error_id: str
) -> None:
    files = render_k8s(members_input, options()).files
    doc = next(d for d in yaml.safe_load_all(files["validator-transit.yaml"]) if d)
    genesis = tmp_path / "consortium.json"
    genesis.write_text(doc["data"]["consortium.json"])
    node_key = key_dir / "transit" / "node.key"
    peers = [f"{'ab' * 64}@validator-weather-0.validator-weather.chronoseal-weather.svc:30303"]
    binary = str(tmp_path / "absent" / "ethereumjs")
    if breakage == "genesis without signers":
        genesis.write_text(json.dumps({**json.loads(genesis.read_text()), "extraData": "0x00"}))
    elif breakage == "genesis not json":
        genesis.write_text("{")
    elif breakage == "node key not hex":
        node_key = tmp_path / "node.key"
        node_key.write_text("zz" * 32)
    elif breakage == "peer without node id":
        peers = ["validator-weather-0.validator-weather.chronoseal-weather.svc:30303"]
    with pytest.raises(ChronosealError) as caught:
        validator_node_command(
            genesis=genesis,
            data_dir=tmp_path / "data",
            signer_key_file=key_dir / "transit" / "signer.key",
            node_key_file=node_key,
            static_peers=peers,
            p2p_port=30303,
            rpc_addr="127.0.0.1",
            rpc_port=8545,
            ext_ip="127.0.0.1",
            binary=binary,
        )
    assert caught.value.id == error_id
    assert (key_dir / "transit" / "signer.key").read_text() not in str(caught.value)
    assert not (tmp_path / "data").exists()


@pytest.fixture
def rendered_network(
    members_input: DeployInput, key_dir: Path, tmp_path: Path
) -> Iterator[list[str]]:
    """The three rendered validator pods run on loopback: each pod's args as rendered, with
    only what differs between pods and one host (paths, ports, the peers' DNS names) mapped."""
    import os
    import socket
    import subprocess

    from chronoseal.ledger import find_ethereumjs

    if find_ethereumjs() is None:
        message = "the EthereumJS client is not installed: run scripts/ethereumjs"
        if os.environ.get("CHRONOSEAL_REQUIRE_ETHEREUMJS") == "1":
            pytest.fail(message)
        pytest.skip(message)

    def free() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    files = render_k8s(members_input, options()).files
    p2p = {m: free() for m in MEMBERS}
    rpc = {m: free() for m in MEMBERS}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for member in MEMBERS:
            docs = [d for d in yaml.safe_load_all(files[f"validator-{member}.yaml"]) if d]
            pod = tmp_path / member
            (pod / "chain").mkdir(parents=True)
            (pod / "chain" / "consortium.json").write_text(docs[0]["data"]["consortium.json"])
            shutil.copytree(key_dir / member, pod / "keys")
            (container,) = pod_spec(docs[2])["containers"]
            mapping = {
                "/srv/chronoseal/chain": str(pod / "chain"),
                "/var/run/secrets/chronoseal/validator": str(pod / "keys"),
                "/var/lib/chronoseal": str(pod / "state"),
                f"0.0.0.0:{VALIDATOR_RPC_PORT}": f"127.0.0.1:{rpc[member]}",
            }
            for o in MEMBERS:
                host = f"validator-{o}-0.validator-{o}.chronoseal-{o}.svc:{VALIDATOR_P2P_PORT}"
                mapping[host] = f"localhost:{p2p[o]}"  # a name, resolved by the dialler
            args = []
            for arg in container["args"]:
                arg = expand(arg, {"CHRONOSEAL_POD_IP": "127.0.0.1"})
                for old, new in mapping.items():
                    arg = arg.replace(old, new)
                args.append(str(p2p[member]) if args and args[-1] == "--p2p-port" else arg)
            with (tmp_path / f"{member}.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys_executable(), "-m", "chronoseal", *args],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield [f"http://127.0.0.1:{rpc[m]}" for m in MEMBERS]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def sys_executable() -> str:
    import sys

    return sys.executable


@pytest.mark.integration
def test_the_rendered_validators_form_a_sealing_network(rendered_network: list[str]) -> None:
    import time
    import urllib.request

    def call(url: str, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        request = urllib.request.Request(
            url, data=body.encode(), headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                return json.loads(response.read()).get("result")
        except OSError:
            return None

    deadline = time.monotonic() + 180
    heads: list[Any] = []
    while time.monotonic() < deadline:
        heads = [call(u, "eth_getBlockByNumber", ["latest", False]) for u in rendered_network]
        if all(h is not None and int(h["number"], 16) >= 3 for h in heads):
            break
        time.sleep(1)
    else:
        pytest.fail(f"the rendered validators did not all reach block 3: {heads}")
    # one chain: block 2 is the same on every node, and its sealer one of the members
    blocks = [call(u, "eth_getBlockByNumber", ["0x2", False]) for u in rendered_network]
    assert len({b["hash"] for b in blocks}) == 1
    assert [int(call(u, "net_peerCount", []), 16) for u in rendered_network] == [2, 2, 2]
