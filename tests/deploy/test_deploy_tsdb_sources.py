"""Gateways reading InfluxDB and Prometheus: credentials arrive as Secret references (never a
value in a manifest), the store's port is the only egress to it, a credentials file is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_deploy_k8s import Loader, options, pod_spec, workloads, written_docs

from chronoseal.deploy import render_k8s
from chronoseal.errors import DeployError

INFLUX = "influxdb://influx.weather.svc:8086/weather?measurement=daily&auth=env:WEATHER_INFLUX"
PROM = "prometheus://prom:9091?query=ridership&step=1d&start=0&end=86400&auth=env:PROM_TOKEN"


def test_time_series_credentials_are_secret_references_and_their_ports_the_egress(
    make_scenario: Callable[..., Path], load_input: Loader, tmp_path: Path
) -> None:
    inp = load_input(
        make_scenario(
            sources={"weather": f'daily_weather = "{INFLUX}"', "transit": f'ridership = "{PROM}"'}
        )
    )
    files = written_docs(tmp_path, inp, options())
    for gateway, var, port in (
        ("gateway-weather", "WEATHER_INFLUX", 8086),
        ("gateway-transit", "PROM_TOKEN", 9091),
    ):
        env = {e["name"]: e for e in pod_spec(workloads(files)[gateway])["containers"][0]["env"]}
        assert env[var] == {
            "name": var,
            "valueFrom": {"secretKeyRef": {"name": f"{gateway}-tsdb", "key": var}},
        }
        assert "PGPASSWORD" not in env  # no PostgreSQL source, no such key to ask for
        flows = next(d for d in files[f"{gateway}.yaml"] if d["kind"] == "NetworkPolicy")
        assert any(
            r["ports"] == [{"protocol": "TCP", "port": port}] for r in flows["spec"]["egress"]
        )
    readme = render_k8s(inp, options()).files["README.txt"]
    assert "create secret generic gateway-weather-tsdb --from-literal=WEATHER_INFLUX=..." in readme
    assert "create secret generic gateway-transit-tsdb --from-literal=PROM_TOKEN=..." in readme


def test_a_credentials_file_is_refused_for_a_deployment(
    make_scenario: Callable[..., Path], load_input: Loader
) -> None:
    url = "influxdb://influx:8086/weather?measurement=daily&auth=file:/etc/influx.auth"
    inp = load_input(make_scenario(sources={"weather": f'daily_weather = "{url}"'}))
    with pytest.raises(DeployError) as caught:
        render_k8s(inp, options())
    assert caught.value.id == "deploy.source.auth_file"
    assert "auth=env:NAME" in caught.value.message
