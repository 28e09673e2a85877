"""`chronoseal deploy render`: files written, refusals with their ids and exit codes."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from chronoseal.cli import app
from chronoseal.deploy import DeployInput, K8sOptions, render_gramine, render_k8s

runner = CliRunner()


def test_renders_the_bundled_scenario_and_warns_it_is_simulated(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = runner.invoke(app, ["deploy", "render", "--target", "k8s", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "namespaces.yaml").is_file() and (out / "README.txt").is_file()
    assert "gateway-transit.yaml" in result.output
    assert "SIMULATED TEE" in result.output


def test_files_left_from_an_earlier_render_are_pointed_out(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    out.mkdir()
    (out / "gateway-gone.yaml").write_text("kind: StatefulSet\n")
    result = runner.invoke(app, ["deploy", "render", "--target", "k8s", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "did not write: gateway-gone.yaml" in result.output


def test_options_reach_the_manifests(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    contract = "0x" + "ab" * 20
    result = runner.invoke(
        app,
        [
            "deploy", "render", "--target", "k8s", "--out", str(out),
            "--image", "registry.example/chronoseal:9", "--contract", contract,
            "--chain-url", "http://besu.example:8546", "--memory", "3Gi",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = (out / "analysis.yaml").read_text()
    assert "image: registry.example/chronoseal:9" in text
    assert f"contract: '{contract}'" in text or f"contract: {contract}" in text
    assert "port: 8546" in (out / "namespaces.yaml").read_text()
    assert text.count("memory: 3Gi") == 2  # request and limit


def test_a_missing_scenario_exits_2_with_its_id(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["deploy", "render", "--target", "k8s", "--out", str(tmp_path / "o"),
         "--scenario", str(tmp_path / "nope.toml")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "[config.file.missing]" in result.output
    assert not (tmp_path / "o").exists()


def test_a_bad_target_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["deploy", "render", "--target", "nomad", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nomad" in result.output


def test_a_csv_task_renders_the_csv_runtime_class(
    make_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    scenario = make_scenario(analysis="csv")
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        ["deploy", "render", "--target", "k8s", "--out", str(out), "--scenario", str(scenario)],
    )
    assert result.exit_code == 0, result.output
    rendered = "".join(path.read_text() for path in out.rglob("*.yaml"))
    assert "runtimeClassName: kata-qemu-csv" in rendered


def test_gramine_for_a_simulated_task_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["deploy", "render", "--target", "gramine", "--out", str(tmp_path / "g")]
    )
    assert result.exit_code == 2
    assert "[deploy.gramine.no_sgx_component]" in result.output


def test_gramine_for_an_sgx_task_writes_templates(
    make_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    scenario = make_scenario(gateway="sgx", analysis="sgx", prediction="sgx")
    out = tmp_path / "g"
    result = runner.invoke(
        app,
        ["deploy", "render", "--target", "gramine", "--out", str(out), "--scenario", str(scenario)],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "README.txt",
        "analysis.manifest.template",
        "gateway.manifest.template",
        "prediction.manifest.template",
    ]


def test_serve_commands_take_the_deployment_values_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, example_dir: Path, tmp_path: Path
) -> None:
    """A Gramine enclave's argv is fixed in its manifest: the chain, contract, party and peers
    reach `gateway serve` as the environment variables the manifests pass through."""
    args = [
        "gateway", "serve", "--config", str(example_dir / "parties" / "transit.toml"),
        "--spec", str(tmp_path / "absent.toml"), "--key-file", str(tmp_path / "key.json"),
    ]  # fmt: skip
    missing = runner.invoke(app, args)
    assert missing.exit_code == 2 and "Missing option" in missing.output
    for name, value in {
        "CHRONOSEAL_CHAIN_URL": "http://127.0.0.1:9",
        "CHRONOSEAL_CONTRACT": "0x" + "12" * 20,
        "CHRONOSEAL_PARTY": "transit",
        "CHRONOSEAL_RUNTIME": "127.0.0.1:9",
        "CHRONOSEAL_PREDICTION": "127.0.0.1:10",
    }.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "Missing option" not in result.output
    assert "[spec.file.missing]" in result.output  # past the options, at the absent spec


def parse_command_line(argv: list[str]) -> Any:
    """Parse ``argv`` with the real `chronoseal` CLI, without running the command: unknown or
    missing options fail here exactly as they would in the container."""
    command = typer.main.get_command(app)
    args = list(argv)
    while hasattr(command, "commands"):  # a group: descend into the named subcommand
        name = args.pop(0)
        assert name in command.commands, f"no command {name!r}"
        command = command.commands[name]
    return command.make_context(command.name or "", args)


def expand(arg: str, env: dict[str, str | None]) -> str:
    """The kubelet's ``$(VAR)`` expansion of container args."""
    return re.sub(r"\$\((\w+)\)", lambda m: str(env[m.group(1)]), arg)


def test_every_rendered_container_command_parses_with_the_real_cli(
    make_scenario: Callable[..., Path], load_input: Callable[[Path], DeployInput]
) -> None:
    inp = load_input(make_scenario(gateway="sgx", analysis="tdx", prediction="simulated"))
    contract = "0x" + "ab" * 20
    files = render_k8s(inp, K8sOptions(chain_url="http://node:8545", contract=contract)).files
    parsed = 0
    for name, text in files.items():
        if not name.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc is None or doc["kind"] not in ("Deployment", "StatefulSet"):
                continue
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            if "args" not in container:  # SGX: the argv is in the Gramine manifest
                continue
            env = {e["name"]: e.get("value") for e in container["env"]}
            env["CHRONOSEAL_CHAIN_URL"], env["CHRONOSEAL_CONTRACT"] = "http://node:8545", contract
            args = [expand(a, env) for a in container["args"]]
            ctx = parse_command_line(args)
            assert ctx.params["health"] == "0.0.0.0:8081"
            assert ctx.params["key_file"] == Path(
                "/var/run/secrets/chronoseal/keystore/keystore.json"
            )
            parsed += 1
    assert parsed == 5  # analysis, prediction, three party agents (the gateways run in SGX)


def test_every_gramine_argv_parses_with_the_real_cli(
    make_scenario: Callable[..., Path],
    load_input: Callable[[Path], DeployInput],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inp = load_input(make_scenario(gateway="sgx", analysis="sgx", prediction="sgx"))
    for name, value in {
        "CHRONOSEAL_CHAIN_URL": "http://node:8545",
        "CHRONOSEAL_CONTRACT": "0x" + "ab" * 20,
        "CHRONOSEAL_PARTY": "transit",
        "CHRONOSEAL_RUNTIME": "analysis:7443",
        "CHRONOSEAL_PREDICTION": "prediction:7543",
    }.items():
        monkeypatch.setenv(name, value)  # what the manifests pass through from the host
    for name, text in render_gramine(inp).files.items():
        if not name.endswith(".manifest.template"):
            continue
        line = next(x for x in text.splitlines() if x.startswith("loader.argv = "))
        argv = tomllib.loads(line)["loader"]["argv"]
        assert argv[:3] == ["python3", "-m", "chronoseal"]
        ctx = parse_command_line(argv[3:])
        assert ctx.params["chain"] == "http://node:8545"


def test_the_worker_and_runtime_commands_of_compute_workers_parse_with_the_real_cli(
    make_scenario: Callable[..., Path], load_input: Callable[[Path], DeployInput]
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
    files = render_k8s(load_input(scenario), K8sOptions(chain_url="http://node:8545")).files
    containers = {}
    for name in ("analysis-worker.yaml", "analysis.yaml"):
        for doc in yaml.safe_load_all(files[name]):
            if doc["kind"] == "StatefulSet":
                (containers[doc["metadata"]["name"]],) = doc["spec"]["template"]["spec"][
                    "containers"
                ]
    env = {"CHRONOSEAL_POD_NAME": "analysis-worker-1", "CHRONOSEAL_PREDICTION": "p:7543"}
    env |= {"CHRONOSEAL_CHAIN_URL": "http://node:8545", "CHRONOSEAL_CONTRACT": "0x" + "ab" * 20}
    worker = parse_command_line([expand(a, env) for a in containers["analysis-worker"]["args"]])
    assert worker.params == {
        "listen": "0.0.0.0:7643",
        "dask_port": 7644,
        "contact": "analysis-worker-1.analysis-worker.chronoseal-runtime.svc",
    }
    runtime = parse_command_line([expand(a, env) for a in containers["analysis"]["args"]])
    assert runtime.params["worker_at"] == [
        "analysis-worker-0.analysis-worker.chronoseal-runtime.svc:7643",
        "analysis-worker-1.analysis-worker.chronoseal-runtime.svc:7643",
    ]
    assert runtime.params["dask_listen"] == "0.0.0.0:7645"
    assert runtime.params["dask_contact"] == "analysis.chronoseal-runtime.svc"
