"""The explorer over HTTP (Starlette's TestClient): what each page and its JSON say, the
refusals of bad input, read-only routes, the incremental cache, a node that goes away."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from explorer_world import ExplorerWorld, digest
from rpc_proxy import RpcProxy
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

import chronoseal.explorer as explorer_package
from chronoseal.cli import app as cli_app
from chronoseal.explorer import NotConsortium, check_consortium, create_app, open_consortium
from chronoseal.ledger import Consortium, EmbeddedChain

JSON = {"accept": "application/json"}


def tid(world: ExplorerWorld, name: str) -> str:
    return "0x" + world.tasks[name].hex()


def no_internals(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text
    assert "site-packages" not in text


def pages(world: ExplorerWorld) -> list[str]:
    return [
        "/consortium",
        "/measurements",
        "/tasks",
        f"/tasks/{tid(world, 'serving')}",
        f"/tasks/{tid(world, 'disputed')}",
        f"/tasks/{tid(world, 'proposed')}",
        f"/address/{world.analysis.address}",
    ]


# ------------------------------------------------------------------ pages and JSON


def test_every_page_is_html_and_the_same_json_at_the_same_path_and_under_api(
    client: TestClient, world: ExplorerWorld
) -> None:
    for path in ["/", *pages(world)]:
        html = client.get(path)
        assert html.status_code == 200, (path, html.text[:500])
        assert html.headers["content-type"].startswith("text/html")
        assert "<main" in html.text and "read-only" in html.text
        negotiated = client.get(path, headers=JSON)
        assert negotiated.headers["content-type"] == "application/json"
        api = client.get("/api" + (path if path != "/" else "/consortium"))
        assert api.status_code == 200
        a, b = negotiated.json(), api.json()
        for doc in (a, b):  # the refresh figures differ between two requests, nothing else
            doc.pop("chain")
        assert a == b


def test_consortium_page_lists_members_keys_proposals_and_the_simulated_flag(
    client: TestClient, world: ExplorerWorld
) -> None:
    doc = client.get("/api/consortium").json()
    assert doc["simulated_tee_allowed"] is True
    assert [m["name"] for m in doc["members"]] == ["alpha", "beta", "gamma", "delta"]
    alpha = doc["members"][0]
    assert alpha["keys"][0]["address"] == world.orgs["alpha"].address
    assert alpha["org_id"] == "0x" + world.consortium.members()[0].org_id.hex()
    joined, open_ = doc["proposals"]
    assert joined["change"].startswith("add member delta")
    assert joined["executed"] is True and (joined["approvals"], joined["required"]) == (3, 3)
    assert [a["org"] for a in joined["approved_by"]] == ["alpha", "beta", "gamma"]
    assert open_["executed"] is False and (open_["approvals"], open_["required"]) == (1, 4)
    assert open_["change"] == "set simulated TEE allowed to false"
    html = client.get("/").text
    assert "simulated TEE allowed" in html and world.orgs["beta"].address in html


def test_measurements_page_shows_approvals_per_member_revocation_and_pinning_tasks(
    client: TestClient, world: ExplorerWorld
) -> None:
    doc = client.get("/api/measurements").json()
    by_kind = {m["kind"]: m for m in doc["measurements"]}
    analysis = by_kind["analysis"]
    assert analysis["digest"] == "0x" + digest("analysis-code").hex()
    assert analysis["tee"] == "simulated" and analysis["status"] == "approved"
    assert analysis["usable"] is True
    assert [a["org"] for a in analysis["approved_by"]] == ["alpha", "beta", "gamma"]
    # delta joined after the approval: the snapshot of 3 made it usable, delta never approved
    assert analysis["not_approved_by"] == ["delta"]
    assert {t["task_id"] for t in analysis["pinned_by"]} == {
        "0x" + t.hex() for t in world.tasks.values()
    }
    gateway = by_kind["gateway"]
    assert gateway["status"] == "revoked" and gateway["usable"] is False
    assert gateway["revoked"]["org"] == "gamma" and gateway["revoked"]["block"] > 0
    assert gateway["pinned_by"] == []
    one = client.get(f"/api/measurements/{gateway['id']}").json()
    assert one["measurement"]["revoked"]["org"] == "gamma"
    assert "revoked" in client.get("/measurements").text


def test_tasks_page_lists_each_task_with_state_and_deadline(
    client: TestClient, world: ExplorerWorld
) -> None:
    doc = client.get("/api/tasks").json()
    states = {t["task_id"]: t["state"] for t in doc["tasks"]}
    assert states == {
        tid(world, "serving"): "Serving",
        tid(world, "disputed"): "Disputed",
        tid(world, "proposed"): "Proposed",
    }
    for task in doc["tasks"]:
        assert task["deadline"] > doc["now"] and task["deadline_passed"] is False
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", task["deadline_utc"])
        assert task["participants"] == ["alpha", "beta", "gamma"]


def test_task_page_has_the_whole_timeline(client: TestClient, world: ExplorerWorld) -> None:
    doc = client.get(f"/api/tasks/{tid(world, 'serving')}").json()
    assert doc["state"] == "Serving" and doc["disputed"] is False
    assert [(t["from"], t["to"]) for t in doc["transitions"]] == [
        ("None", "Proposed"),
        ("Proposed", "Approved"),
        ("Approved", "Running"),
        ("Running", "Trained"),
        ("Trained", "Serving"),
    ]
    relayed = [a for a in doc["approvals"]["events"] if a["relayed"]]
    assert [(a["org"], a["actor_name"]) for a in relayed] == [("beta", "gamma")]
    analysis, prediction = doc["attestations"]
    assert analysis["kind"] == "analysis" and analysis["bound"] is True
    assert [k["by"] for k in analysis["acknowledgements"]] == ["alpha", "beta"]
    assert prediction["acknowledgements"][0]["by"] == "analysis runtime"
    assert [(c["party"], c["verdict"]) for c in doc["commitments"]] == [
        ("alpha", "matched"),
        ("beta", "matched"),
    ]
    assert doc["model_commitment"] == "0x" + digest("model").hex()
    assert doc["metrics_digest"] == "0x" + hashlib.sha256(b"metrics").hexdigest()
    assert [m["matches"] for m in doc["models"]] == [True, True]
    assert (doc["audit"]["batches"], doc["audit"]["predictions"]) == (2, 6)
    assert [b["count"] for b in doc["audit"]["shown"]] == [3, 3]
    events = [e["event"] for e in doc["timeline"]]
    assert events[0] == "TaskProposed" and events[-1] == "AuditRootPosted"
    assert events.count("TaskStateChanged") == 5
    html = client.get(f"/tasks/{tid(world, 'serving')}").text
    assert 'id="timeline"' in html and "relayed by gamma" in html
    assert "2 audit batches, 6 audited predictions" in html


def test_every_hex_value_under_api_is_full_length(client: TestClient, world: ExplorerWorld) -> None:
    for path in [*pages(world), f"/tasks/{tid(world, 'disputed')}/verify"]:
        text = client.get("/api" + path).text
        values = re.findall(r"0x[0-9a-fA-F]+", text)
        assert values and {len(v) for v in values} <= {42, 66}, path
        assert not re.search(r"[0-9a-fA-F]…", text), path
    html = client.get(f"/tasks/{tid(world, 'serving')}").text
    model = "0x" + digest("model").hex()
    assert f"{model[:10]}…" in html  # the page shortens for people


def test_a_disputed_task_shows_the_party_whose_commitments_differ(
    client: TestClient, world: ExplorerWorld
) -> None:
    doc = client.get(f"/api/tasks/{tid(world, 'disputed')}").json()
    assert doc["state"] == "Disputed" and doc["disputed"] is True
    assert {c["party"]: c["verdict"] for c in doc["commitments"]} == {
        "alpha": "matched",
        "beta": "disputed",
    }
    beta = doc["commitments"][1]
    assert beta["gateway"] != beta["runtime"]
    html = client.get(f"/tasks/{tid(world, 'disputed')}").text
    assert 'id="disputed"' in html and "commitment-disputed" in html


def test_verify_runs_the_audit_checks_and_every_check_passes_on_a_clean_task(
    client: TestClient, world: ExplorerWorld
) -> None:
    doc = client.get(f"/api/tasks/{tid(world, 'serving')}/verify").json()
    assert doc["verified"] is True and doc["failures"] == []
    ids = [c["id"] for c in doc["checks"]]
    assert "audit.commitments" in ids and len(ids) == len(set(ids))
    assert all(c["verdict"] in ("pass", "not_reached") for c in doc["checks"])
    assert {c["id"]: c["verdict"] for c in doc["checks"]}["audit.signatures"] == "pass"
    html = client.get(f"/tasks/{tid(world, 'serving')}/verify").text
    assert "verified: no check failed" in html and "check-fail" not in html


def test_verify_fails_the_commitments_check_on_a_disputed_task(
    client: TestClient, world: ExplorerWorld
) -> None:
    doc = client.get(f"/api/tasks/{tid(world, 'disputed')}/verify").json()
    assert doc["verified"] is False and "audit.commitments" in doc["failures"]
    failed = next(c for c in doc["checks"] if c["id"] == "audit.commitments")
    assert failed["verdict"] == "fail" and "beta" in failed["detail"]
    html = client.get(f"/tasks/{tid(world, 'disputed')}/verify").text
    row = re.search(r'<tr class="check check-fail" data-check="audit.commitments"', html)
    assert row is not None
    assert "not verified" in html


def test_the_address_page_names_members_and_components(
    client: TestClient, world: ExplorerWorld
) -> None:
    runtime = client.get(f"/api/address/{world.analysis.address.lower()}").json()
    assert runtime["address"] == world.analysis.address  # any case in, checksummed out
    assert runtime["member"] is None and runtime["label"] == "analysis runtime"
    assert {c["task_id"] for c in runtime["components"]} == {
        tid(world, "serving"),
        tid(world, "disputed"),
    }
    key = client.get(f"/api/address/{world.orgs['beta'].address}").json()
    assert key["member"] == "beta" and key["transactions"] > 0


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("path", "error_id"),
    [
        ("/tasks/0x" + "ab" * 32, "explorer.task.unknown"),
        ("/tasks/0x" + "ab" * 32 + "/verify", "explorer.task.unknown"),
        ("/address/0x" + "12" * 20, "explorer.address.unknown"),
        ("/measurements/0x" + "cd" * 32, "explorer.measurement.unknown"),
        ("/no/such/page", "explorer.page.not_found"),
        ("/static/../../etc/passwd", "explorer.page.not_found"),
        ("/static/secret.py", "explorer.page.not_found"),
    ],
)
def test_unknown_things_are_a_404_page_with_the_reason(
    client: TestClient, path: str, error_id: str
) -> None:
    html = client.get(path)
    assert html.status_code == 404
    assert f"[{error_id}]" in html.text and "404" in html.text
    no_internals(html.text)
    doc = client.get(path, headers=JSON).json()
    assert doc["status"] == 404 and doc["error"]["id"] == error_id
    assert doc["error"]["message"]


@pytest.mark.parametrize(
    ("path", "status", "error_id"),
    [
        ("/tasks/0xzz", 400, "explorer.task_id.malformed"),
        ("/tasks/12345", 400, "explorer.task_id.malformed"),
        ("/tasks/0x" + "a" * 5000, 400, "explorer.task_id.malformed"),
        ("/tasks/..%2F..%2Fetc%2Fpasswd", 404, "explorer.page.not_found"),
        ("/tasks/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404, "explorer.page.not_found"),
        ("/tasks/%3Cscript%3Ealert(1)", 400, "explorer.task_id.malformed"),
        ("/tasks/0x" + "ab" * 32 + "%00/verify", 400, "explorer.task_id.malformed"),
        ("/address/0x123", 400, "explorer.address.malformed"),
        ("/address/%3Cimg%20src=x%20onerror=alert(1)%3E", 400, "explorer.address.malformed"),
        ("/measurements/'%20OR%201=1--", 400, "explorer.measurement_id.malformed"),
    ],
)
def test_malformed_parameters_get_a_clear_page_never_a_stack_trace(
    client: TestClient, path: str, status: int, error_id: str
) -> None:
    response = client.get(path)
    assert response.status_code == status, response.text[:300]
    assert f"[{error_id}]" in response.text
    no_internals(response.text)
    assert "<script>alert" not in response.text and "<img src=x" not in response.text
    assert len(response.text) < 10_000  # an overlong id is not echoed back in full
    assert client.get(path, headers=JSON).json()["error"]["id"] == error_id


def test_html_in_the_query_string_is_never_reflected(client: TestClient) -> None:
    response = client.get("/tasks", params={"q": "<script>alert(1)</script>", "x": "</main>"})
    assert response.status_code == 200
    assert "<script>alert" not in response.text and "alert(1)" not in response.text


def test_names_from_the_chain_are_escaped(world: ExplorerWorld) -> None:
    """A member is whatever name a founder or proposal registered: markup stays text."""
    evil = "<img src=x onerror=alert(1)>"
    deployer = Account.create()
    world.chain.fund(deployer.address, 10**18)
    hostile = Consortium.deploy(world.chain, deployer.key, [(evil, deployer.address)])
    with TestClient(create_app(hostile)) as c:
        html = c.get("/").text
    assert evil not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_pages_are_self_contained_and_unframeable(client: TestClient) -> None:
    response = client.get("/")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert re.findall(r'(?:src|href)="(https?:)?//', response.text) == []
    for asset in ("/static/explorer.css", "/static/explorer.js"):
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 500


# ------------------------------------------------------------------ read-only


def test_only_get_and_head_routes_exist(client: TestClient, world: ExplorerWorld) -> None:
    app: Any = client.app
    for route in app.routes:
        assert isinstance(route, Route)
        assert route.methods is not None and set(route.methods) <= {"GET", "HEAD"}
    for path in [*pages(world), f"/tasks/{tid(world, 'serving')}/verify", "/api/status"]:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            response = client.request(method, path)
            assert response.status_code == 405, (method, path)
            assert "explorer.method.not_allowed" in response.text  # HTML, or JSON for /api
            assert response.headers["allow"] == "GET, HEAD"
        assert client.head(path).status_code == 200


def test_browsing_every_page_sends_no_transaction(client: TestClient, world: ExplorerWorld) -> None:
    before = world.chain.block_number()
    for path in [*pages(world), f"/tasks/{tid(world, 'disputed')}/verify", "/api/status"]:
        assert client.get(path).status_code == 200
    assert world.chain.block_number() == before


# ------------------------------------------------------------------ incremental cache


def test_each_refresh_reads_only_the_new_events(fresh_world: ExplorerWorld) -> None:
    world = fresh_world
    task = "0x" + world.tasks["serving"].hex()
    with TestClient(create_app(world.consortium)) as c:
        first = c.get("/api/status").json()
        total = first["events"]
        assert first["last_refresh"]["events_read"] == total > 50  # the cold start reads all
        assert c.get("/api/status").json()["last_refresh"]["events_read"] == 0
        for batch in range(1, 4):
            world.audit_root(world.tasks["serving"], batch)
        doc = c.get(f"/api/tasks/{task}").json()
        assert doc["chain"]["last_refresh"]["events_read"] == 3
        assert doc["chain"]["last_refresh"]["blocks_read"] == 3
        assert doc["chain"]["events"] == total + 3
        assert doc["audit"]["batches"] == 4
        world.audit_root(world.tasks["serving"], 4)
        after = c.get("/api/status").json()
        assert after["last_refresh"]["events_read"] == 1
        assert after["last_refresh"]["from_block"] == doc["chain"]["last_refresh"]["to_block"] + 1


# ------------------------------------------------------------------ the node goes away


def test_a_node_that_goes_away_is_said_and_the_explorer_recovers(
    fresh_world: ExplorerWorld,
) -> None:
    world = fresh_world
    assert isinstance(world.chain, EmbeddedChain)
    proxy = RpcProxy(world.chain)
    proxy.start()
    try:
        remote = open_consortium(
            proxy.url, world.consortium.address, from_block=world.consortium.deploy_block
        )
        task = "0x" + world.tasks["serving"].hex()
        with TestClient(create_app(remote)) as c:
            assert c.get(f"/tasks/{task}").status_code == 200
            proxy.stop()
            world.audit_root(world.tasks["serving"], 1)  # the chain moves on meanwhile
            down = c.get(f"/tasks/{task}")
            assert down.status_code == 503
            assert "[ledger.chain.unavailable]" in down.text
            assert f"the chain node at {proxy.url} cannot be reached" in down.text
            assert 'data-recover="on"' in down.text
            no_internals(down.text)
            assert "HTTPConnectionPool" not in down.text
            status = c.get("/api/status")
            assert status.status_code == 503 and status.json()["chain"] == "down"
            proxy.start()
            back = c.get(f"/api/tasks/{task}")
            assert back.status_code == 200
            assert back.json()["audit"]["batches"] == 2
            assert back.json()["chain"]["chain"] == "up"
            assert back.json()["chain"]["last_refresh"]["events_read"] == 1
    finally:
        proxy.stop()


# ------------------------------------------------------------------ not a consortium


def _other_contract(chain: EmbeddedChain) -> str:
    """A contract that answers 42 to every call: code, but not a consortium."""
    account = Account.create()
    chain.fund(account.address, 10**18)
    runtime = "602a60005260206000f3"
    init = "600a600c600039600a6000f3" + runtime
    receipt = chain.transact(account, {"data": "0x" + init}, gas=100_000, function="deploy")
    address = chain.w3.eth.get_transaction_receipt(receipt.tx_hash)["contractAddress"]  # type: ignore[arg-type]
    assert chain.w3.eth.get_code(address).hex() == runtime
    return str(address)


def test_an_address_without_a_consortium_is_refused_at_start_and_on_every_page(
    world: ExplorerWorld,
) -> None:
    assert isinstance(world.chain, EmbeddedChain)
    other = _other_contract(world.chain)
    proxy = RpcProxy(world.chain)
    proxy.start()
    try:
        for address in (other, world.analysis.address):
            with pytest.raises(NotConsortium) as info:
                open_consortium(proxy.url, address)
            assert info.value.id == "explorer.contract.not_consortium"
            result = CliRunner().invoke(
                cli_app, ["explorer", "--rpc", proxy.url, "--contract", address]
            )
            assert result.exit_code == 2
            assert "[explorer.contract.not_consortium]" in result.output
            with TestClient(create_app(Consortium(world.chain, address))) as c:
                page = c.get("/tasks")
                assert page.status_code == 502
                assert "[explorer.contract.not_consortium]" in page.text
                assert "not a chronoseal consortium" in page.text
                no_internals(page.text)
                doc = c.get("/api/tasks").json()
                assert doc["error"]["id"] == "explorer.contract.not_consortium"
    finally:
        proxy.stop()


def test_another_release_of_the_contract_is_recognised_by_its_eip712_domain(
    world: ExplorerWorld,
) -> None:
    """Code that is not this build's is accepted when it computes chronoseal's domain."""
    assert check_consortium(world.consortium) is True
    other_build = Consortium(world.chain, world.consortium.address)
    other_build.artifact = dataclasses.replace(other_build.artifact, bytecode_runtime="0x00")
    assert check_consortium(other_build) is False
    with TestClient(create_app(other_build)) as c:
        doc = c.get("/api/consortium").json()
    assert doc["chain"]["code_matches_build"] is False
    assert len(doc["members"]) == 4


def test_the_cli_refuses_a_malformed_contract_and_an_unreachable_node() -> None:
    result = CliRunner().invoke(cli_app, ["explorer", "--contract", "0x1234<b>"])
    assert result.exit_code == 2 and "[explorer.contract.malformed]" in result.output
    result = CliRunner().invoke(
        cli_app,
        ["explorer", "--rpc", "http://127.0.0.1:9", "--contract", "0x" + "11" * 20],
    )
    assert result.exit_code == 2 and "[ledger.chain.unavailable]" in result.output
    result = CliRunner().invoke(
        cli_app, ["explorer", "--contract", "0x" + "11" * 20, "--listen", "nowhere"]
    )
    assert result.exit_code == 2 and "[config.endpoint]" in result.output


# ------------------------------------------------------------------ the command and the package


def test_the_command_serves_the_explorer_over_json_rpc(
    world: ExplorerWorld, loopback_port: int
) -> None:
    """``chronoseal explorer`` as its own process, against a node over HTTP JSON-RPC."""
    assert isinstance(world.chain, EmbeddedChain)
    proxy = RpcProxy(world.chain)
    proxy.start()
    port = loopback_port
    command = [
        sys.executable,
        "-m",
        "chronoseal",
        "explorer",
        "--rpc",
        proxy.url,
        "--contract",
        world.consortium.address,
        "--from-block",
        str(world.consortium.deploy_block),
        "--listen",
        f"127.0.0.1:{port}",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/api/tasks", timeout=10) as response:
                    doc = json.loads(response.read())
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the explorer did not start"
                time.sleep(0.2)
        assert {t["state"] for t in doc["tasks"]} == {"Serving", "Disputed", "Proposed"}
        assert doc["chain"]["chain_kind"] == "json-rpc"
        request = urllib.request.Request(url + "/tasks", method="POST", data=b"")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405
        refused.value.close()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
        proxy.stop()
    assert f"explorer for consortium {world.consortium.address}" in out


def test_the_explorer_imports_only_ledger_audit_and_errors() -> None:
    package = Path(explorer_package.__file__).parent
    allowed = {"ledger", "audit", "errors", "explorer", "spec", "_hex"}
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("chronoseal."):
                    assert name.split(".")[1] in allowed, (source.name, name)
    templates = {p.name for p in (package / "templates").glob("*.html")}
    assert {"task.html", "verify.html", "error.html"} <= templates
