"""The prediction runtime's promises, on the real demo machinery (embedded EVM, the real
contract, RA-TLS on loopback): the model is taken over only from the bound analysis runtime
and only if it hashes to the commitment; forecasts go only to the task's recipients, within
their budget, from feeds that cover the horizon; every refusal has a stable id and is in the
audit log on chain."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from chronoseal.analysis import AnalysisRuntime
from chronoseal.attest import attester_for
from chronoseal.errors import ChronosealError, ModelError, PeerRefused
from chronoseal.gateway import Gateway
from chronoseal.ledger import TaskState, spec_pins
from chronoseal.node import DemoConsortium, bundled_scenario, load_scenario
from chronoseal.prediction import ForecastClient, PredictionRuntime, verify_receipt
from chronoseal.spec import Component

Probe = Callable[["_Probing", AnalysisRuntime, list[Gateway]], None]


class _Probing(DemoConsortium):
    """The demo up to Trained; then the test drives the serving stage itself, with the
    analysis runtime that holds the sealed model and the parties' gateways."""

    def prediction(self, **limits: Any) -> PredictionRuntime:
        key = Account.create()
        self.chain.fund(key.address, 10**20)
        runtime = PredictionRuntime(
            self.consortium,
            self.spec,
            attester=attester_for(self.spec.measurements.prediction.tee, Component.PREDICTION),
            chain_key=key.key,
            **limits,
        )
        runtime.start()
        return runtime

    def client(self, org: str, key: Any = None) -> ForecastClient:
        if key is None:
            return self._client(org)
        account = key

        def sign(digest: bytes) -> bytes:
            return bytes(account.sign_message(encode_defunct(primitive=digest)).signature)

        return ForecastClient(
            self.consortium,
            self.spec,
            party=org,
            sign=sign,
            attester=attester_for(self.spec.measurements.gateway.tee, Component.GATEWAY),
        )


def _world(tmp_path: Path, edit: Callable[[str], str], probe: Probe) -> _Probing:
    root = tmp_path / "chicago"
    shutil.copytree(bundled_scenario().parent, root)
    task = root / "task.toml"
    text = task.read_text().replace("windows = 13", "windows = 2")
    task.write_text(edit(text.replace("contribution = {", "# contribution = {")))
    world = _Probing(
        load_scenario(root / "scenario.toml"), lambda _: None, state_dir=root / "state"
    )
    world.run("trained")
    assert world.runtime is not None
    probe(world, world.runtime, world.gateways)
    return world


def _feed(runtime: PredictionRuntime, gateways: list[Gateway], *orgs: str) -> None:
    for gw in gateways:
        if gw.name in orgs:
            gw.send_feed(runtime.address("feeds"))
    runtime.wait_feeds(set(orgs), timeout=30)


def test_forecasts_only_for_recipients_within_budget_from_feeds_that_cover_them(
    tmp_path: Path,
) -> None:
    seen: dict[str, Any] = {}

    def probe(world: _Probing, analysis: AnalysisRuntime, gateways: list[Gateway]) -> None:
        runtime = world.prediction(audit_max_leaves=1000)
        try:
            with world.client("transit") as early:
                with pytest.raises(PeerRefused) as unbound:
                    early.open(runtime.address("forecasts"))  # nothing bound on chain yet
                seen["unbound"] = unbound.value.id
            analysis.hand_over(runtime.address("handover"))
            assert runtime.wait_serving(60)
            with world.client("transit") as transit:
                transit.open(runtime.address("forecasts"))
                seen["no_feed"] = transit.forecast().refused
                _feed(runtime, gateways, "events")
                seen["one_feed"] = transit.forecast().refused
                _feed(runtime, gateways, "weather")
                seen["unknown"] = transit.forecast(series=["no-such-station"]).refused
                served = transit.forecast()
                seen["served"] = served.forecast
                seen["over"] = transit.forecast().refused
                seen["seqs"] = [served.audit_seq]
            with world.client("weather") as weather:
                weather.open(runtime.address("forecasts"))
                seen["weather"] = weather.forecast().refused
            with world.client("events", key=Account.create()) as forged:
                forged.open(runtime.address("forecasts"))
                seen["forged"] = forged.forecast().refused
            runtime.audit.flush()
            with world.client("transit") as transit:
                transit.open(runtime.address("forecasts"))
                receipt = transit.receipt(seen["seqs"][0])
                verify_receipt(receipt, world.consortium)
                seen["receipt_leaf"] = receipt.leaf
            seen["stats"] = dataclasses.replace(runtime.stats)
        finally:
            runtime.stop()

    spec = lambda t: t.replace(  # noqa: E731
        'forecasts = { to = ["transit", "events"] }',
        'forecasts = { to = ["transit", "events"], max_queries = 1 }',
    )
    world = _world(tmp_path, spec, probe)
    assert seen["unbound"] == "prediction.runtime.not_on_chain"
    assert seen["no_feed"] == "prediction.feed.missing"
    assert seen["one_feed"] == "prediction.feed.missing"
    assert seen["served"] is not None and len(seen["served"]) == 14
    assert seen["unknown"] == "prediction.request.unknown_series"
    assert seen["over"] == "prediction.request.over_budget"
    assert seen["weather"] == "prediction.request.not_recipient"
    assert seen["forged"] == "channel.intake.not_party_key"
    assert seen["receipt_leaf"].outcome == "served"
    assert seen["receipt_leaf"].requester == "transit"
    assert seen["receipt_leaf"].feed_epochs == {"home_games": 0, "weather": 0}
    stats = seen["stats"]
    assert stats.served == 1 and stats.refused == 6
    view = world.consortium.task(world.task_id)
    assert view.state is TaskState.SERVING
    assert view.audited_predictions == 7 + 2  # every request and refusal, two feed epochs


def test_a_feed_that_does_not_cover_the_horizon_is_refused_as_stale(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def probe(world: _Probing, analysis: AnalysisRuntime, gateways: list[Gateway]) -> None:
        runtime = world.prediction()
        try:
            analysis.hand_over(runtime.address("handover"))
            assert runtime.wait_serving(60)
            _feed(runtime, gateways, "weather", "events")
            with world.client("events") as events:
                events.open(runtime.address("forecasts"))
                answer = events.forecast()
                seen["refused"], seen["message"] = answer.refused, answer.message
        finally:
            runtime.stop()

    # Eight days of feed after the training window; the horizon is fourteen.
    _world(
        tmp_path, lambda t: t.replace("data_until = 2016-08-14", "data_until = 2016-08-20"), probe
    )
    assert seen["refused"] == "prediction.feed.stale"
    assert "6 of the next 14" in seen["message"]


def test_a_bundle_that_differs_from_the_commitment_is_never_loaded(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def probe(world: _Probing, analysis: AnalysisRuntime, gateways: list[Gateway]) -> None:
        runtime = world.prediction()
        try:
            assert analysis.trained is not None
            bundle = bytearray(analysis.trained.bundle)
            bundle[-1] ^= 1
            analysis.trained = dataclasses.replace(analysis.trained, bundle=bytes(bundle))
            with pytest.raises(ChronosealError):
                analysis.hand_over(runtime.address("handover"))
            assert not runtime.wait_serving(10)
            seen["refusal"] = runtime.refusal
            seen["model"] = runtime.model
        finally:
            runtime.stop()

    world = _world(tmp_path, lambda t: t, probe)
    assert isinstance(seen["refusal"], ModelError)
    assert seen["refusal"].id == "model.bundle.commitment_mismatch"
    assert seen["model"] is None
    assert world.consortium.task(world.task_id).state is TaskState.DISPUTED


def test_the_rate_holds_and_a_revoked_measurement_stops_new_sessions(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def probe(world: _Probing, analysis: AnalysisRuntime, gateways: list[Gateway]) -> None:
        runtime = world.prediction(recheck_interval=0.0)
        try:
            analysis.hand_over(runtime.address("handover"))
            assert runtime.wait_serving(60)
            _feed(runtime, gateways, "weather", "events")
            with world.client("events") as events, world.client("transit") as open_session:
                events.open(runtime.address("forecasts"))
                seen["answers"] = [events.forecast().refused for _ in range(3)]
                open_session.open(runtime.address("forecasts"))
                assert open_session.forecast().refused is None
                pin = world.spec.measurements.pins()[Component.PREDICTION]
                kind, tee, digest = next(
                    (k, t, d) for k, t, d in spec_pins(world.spec) if d == pin.digest
                )
                world.org("weather").revoke_measurement(kind, tee, digest)
                after = open_session.forecast()  # the session opened before the revocation
                seen["open_session"] = after.refused
                with pytest.raises(ChronosealError):
                    open_session.forecast()  # ... and then closed by the runtime
            with world.client("transit") as transit:
                with pytest.raises(PeerRefused) as refused:
                    transit.open(runtime.address("forecasts"))
                seen["revoked"] = refused.value
            seen["audited"] = runtime.stats.refusals.get("prediction.measurement.revoked")
        finally:
            runtime.stop()

    spec = lambda t: t.replace(  # noqa: E731
        'forecasts = { to = ["transit", "events"] }',
        'forecasts = { to = ["transit", "events"], per_minute = 2 }',
    )
    _world(tmp_path, spec, probe)
    assert seen["answers"] == [None, None, "prediction.request.rate_limited"]
    assert seen["open_session"] == "prediction.measurement.revoked"
    assert seen["audited"] == 1  # the refusal is an audit leaf like any other
    assert seen["revoked"].id == "channel.peer.evidence_refused"
    assert "attest.measurement.not_approved" in seen["revoked"].message


def test_the_runtime_re_attests_as_blocks_pass_so_new_sessions_still_open(
    tmp_path: Path,
) -> None:
    """Clients accept evidence bound to one of the last 64 blocks: past that, only a
    runtime that re-attested is reachable; open sessions keep working meanwhile. On a quiet
    chain it re-attests before its certificate's validity ends all the same."""
    seen: dict[str, Any] = {}
    validity = timedelta(seconds=6)

    def probe(world: _Probing, analysis: AnalysisRuntime, gateways: list[Gateway]) -> None:
        runtime = world.prediction(
            reattest_blocks=8, audit_max_leaves=1000, identity_validity=validity
        )
        try:
            analysis.hand_over(runtime.address("handover"))
            assert runtime.wait_serving(60)
            _feed(runtime, gateways, "weather", "events")
            first = runtime.identity
            with world.client("transit") as open_session:
                open_session.open(runtime.address("forecasts"))
                for _ in range(70):  # more blocks than the clients' freshness window
                    world.chain.fund(Account.create().address, 1)
                deadline = time.monotonic() + 30
                while runtime.identity is first:
                    assert time.monotonic() < deadline, "the runtime never re-attested"
                    time.sleep(0.2)
                seen["open_session"] = open_session.forecast().refused
            with world.client("events") as fresh:
                fresh.open(runtime.address("forecasts"))  # stale_nonce without re-attesting
                seen["new_session"] = fresh.forecast().refused
            quiet = runtime.identity
            time.sleep(validity.total_seconds() + 1)  # past the certificate, hardly a block
            with world.client("events") as later:
                later.open(runtime.address("forecasts"))  # certificate_expired otherwise
                seen["after_validity"] = later.forecast().refused
            seen["rotated_by_time"] = runtime.identity is not quiet
            runtime.audit.flush()
            seen["refreshed"] = sum(
                1
                for seq in range(runtime.audit.leaves)
                if (r := runtime.audit.receipt(seq)) is not None
                and r.leaf.outcome == "prediction.attestation.refreshed"
            )
        finally:
            runtime.stop()

    _world(tmp_path, lambda t: t, probe)
    assert seen["open_session"] is None
    assert seen["new_session"] is None
    assert seen["after_validity"] is None and seen["rotated_by_time"]
    assert seen["refreshed"] >= 2


def test_a_holders_newest_observations_move_its_forecast_past_them(tmp_path: Path) -> None:
    """Transit sends its first week after the training window (desensitized by its client)
    and is forecast the week after it; the whole horizon after it is refused as stale (the
    feeds end two weeks after the window); tampered, replayed or foreign inputs are refused,
    and each refusal is audited."""
    seen: dict[str, Any] = {}

    def probe(world: _Probing, analysis: AnalysisRuntime, gateways: list[Gateway]) -> None:
        runtime = world.prediction(audit_max_leaves=1000)
        try:
            analysis.hand_over(runtime.address("handover"))
            assert runtime.wait_serving(60)
            _feed(runtime, gateways, "weather", "events")
            rows = next(g for g in gateways if g.name == "transit").rows_after_window(7)
            seen["rows"] = rows
            with world.client("transit") as transit:
                transit.open(runtime.address("forecasts"))
                seen["plain"] = transit.forecast(horizon=7).forecast
                after = transit.forecast(observations=rows, horizon=7)
                seen["after"] = after.forecast
                seen["stale"] = transit.forecast(observations=rows).refused
                seen["replayed"] = transit.forecast(
                    observations=rows, horizon=7, request_id=after.request_id
                ).refused
                seen["too_long"] = transit.forecast(horizon=15).refused
                payload, _ = transit._desensitized(rows)
                header, _ = transit._ask(
                    {
                        "request_id": "tampered",
                        "series": [],
                        "input": {"sha256": "00" * 32, "rows": rows.num_rows},
                    },
                    payload,
                )
                seen["tampered"] = header.get("refused")
                seen["plain_again"] = transit.forecast(horizon=7).forecast
                seen["pipelined"] = transit.pipelined(20, window=8, horizon=7)
            with world.client("events") as events:
                events.open(runtime.address("forecasts"))
                header, _ = events._ask({"want": "input.key", "request_id": "k1"})
                seen["events_key"] = header.get("refused")
                with pytest.raises(PeerRefused) as local:
                    events.forecast(observations=rows)
                seen["events_local"] = local.value.id
            with world.client("weather") as weather:
                weather.open(runtime.address("forecasts"))
                header, _ = weather._ask({"want": "input.key", "request_id": "k2"})
                seen["weather_key"] = header.get("refused")
            seen["stats"] = dataclasses.replace(runtime.stats)
            runtime.audit.flush()
            seen["after_leaf"] = runtime.audit.receipt(after.audit_seq)
        finally:
            runtime.stop()

    _world(tmp_path, lambda t: t, probe)
    rows, plain, after = seen["rows"], seen["plain"], seen["after"]
    assert rows.num_rows == 7 and str(rows.column("date")[-1]) == "2016-08-21"
    assert plain["ds"].min() == pd.Timestamp("2016-08-15") and len(plain) == 7
    assert after["ds"].min() == pd.Timestamp("2016-08-22") and len(after) == 7
    assert after["ds"].max() == pd.Timestamp("2016-08-28")
    assert seen["stale"] == "prediction.feed.stale"
    assert seen["replayed"] == "prediction.request.replayed"
    assert seen["too_long"] == "prediction.request.horizon"
    assert seen["tampered"] == "prediction.input.digest"
    assert seen["events_key"] == "prediction.input.not_holder"
    assert seen["events_local"] == "prediction.input.not_holder"
    assert seen["weather_key"] == "prediction.request.not_recipient"
    # The observations served one request only: the next plain request is as before.
    pd.testing.assert_frame_equal(seen["plain_again"], plain)
    # Up to eight requests in flight on one connection: each answered, in order, audited.
    pipelined = seen["pipelined"]
    assert len(pipelined) == 20 and all(a.forecast is not None for a in pipelined)
    pd.testing.assert_frame_equal(pipelined[-1].forecast, plain)
    seqs = [a.audit_seq for a in pipelined]
    assert seqs == sorted(seqs) and len(set(seqs)) == 20
    assert seen["after_leaf"].leaf.outcome == "served"
    refusals = seen["stats"].refusals
    for refusal in ("prediction.feed.stale", "prediction.input.digest"):
        assert refusals[refusal] == 1


def test_an_older_sealed_feed_copied_back_is_refused_on_restart(tmp_path: Path) -> None:
    """The host keeps a copy of the sealed weather feed at epoch 0, lets epoch 1 arrive,
    stops the runtime and puts the old file back: the restarted runtime refuses to serve
    from it (the journal, checked against the chain, records epoch 1)."""
    seen: dict[str, Any] = {}
    state = tmp_path / "state"

    def probe(world: _Probing, analysis: AnalysisRuntime, gateways: list[Gateway]) -> None:
        key = Account.create()
        world.chain.fund(key.address, 10**20)
        attester = attester_for(world.spec.measurements.prediction.tee, Component.PREDICTION)

        def runtime() -> PredictionRuntime:
            return PredictionRuntime(
                world.consortium, world.spec, attester=attester, chain_key=key.key,
                state_dir=state,
            )  # fmt: skip

        first = runtime()
        first.start()
        try:
            analysis.hand_over(first.address("handover"))
            assert first.wait_serving(60)
            _feed(first, gateways, "weather", "events")
            old = (state / "feed-weather.sealed").read_bytes()
            next(g for g in gateways if g.name == "weather").send_feed(first.address("feeds"))
            deadline = time.monotonic() + 30
            while first.feed_epochs.get("weather") != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert first.feed_epochs["weather"] == 1
            first.audit.flush()
        finally:
            first.stop()
        (state / "feed-weather.sealed").write_bytes(old)
        again = runtime()
        with pytest.raises(ChronosealError) as refused:
            again.start()
        again.stop()
        seen["refused"] = refused.value.id

    _world(tmp_path, lambda t: t, probe)
    assert seen["refused"] == "prediction.sealed.rolled_back"
