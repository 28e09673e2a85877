"""The analysis runtime's promises around training, on the real demo machinery (embedded EVM,
gateways streaming over RA-TLS on loopback): bad input is refused with a stable id before
anything is fitted, the task is Aborted (or Disputed) on chain with that reason, and no party
can fetch a release."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from eth_account import Account

from chronoseal.analysis import AnalysisRuntime
from chronoseal.attest import attester_for
from chronoseal.errors import AnalysisError, ChronosealError, DataError, PeerRefused
from chronoseal.gateway import Gateway
from chronoseal.ledger import TaskState, org_id, read_events
from chronoseal.node import DemoConsortium, bundled_scenario, load_scenario
from chronoseal.spec import Component

TableEdit = Callable[[pa.Table], pa.Table]


def _variant(
    tmp_path: Path,
    *,
    spec: Callable[[str], str] = lambda text: text,
    transit: TableEdit | None = None,
    weather: TableEdit | None = None,
) -> Path:
    """A copy of the Chicago scenario with edited data files or task spec."""
    root = tmp_path / "chicago"
    shutil.copytree(bundled_scenario().parent, root)
    for name, edit in (("transit", transit), ("weather", weather)):
        if edit is not None:
            path = root / "data" / f"{name}.parquet"
            pq.write_table(edit(pq.read_table(path)), path)
    task = root / "task.toml"
    task.write_text(spec(task.read_text()))
    return root / "scenario.toml"


class _Recorder(DemoConsortium):
    """The demo; when the run fails, each party's gateway tries to fetch its release."""

    refused: list[PeerRefused]

    def run(self, until="serving"):  # type: ignore[no-untyped-def]
        self.refused = []
        try:
            return super().run(until)
        except ChronosealError:
            attested = self.analysis is not None and self.analysis.listening.is_set()
            for gw in self.gateways if attested else []:
                try:
                    gw.fetch_release(self.analysis.address())  # type: ignore[union-attr]
                except PeerRefused as exc:
                    self.refused.append(exc)
                except Exception as exc:
                    self.refused.append(PeerRefused(str(exc), id=getattr(exc, "id", "other")))
            raise


def _run(scenario: Path) -> tuple[_Recorder, AnalysisError]:
    world = _Recorder(load_scenario(scenario), lambda _: None)
    with pytest.raises(AnalysisError) as info:
        world.run("trained")
    return world, info.value


def _assert_aborted_with(world: _Recorder, reason: str) -> None:
    view = world.consortium.task(world.task_id)
    assert view.state is TaskState.ABORTED
    assert view.model_commitment is None
    aborted = [e for e in read_events(world.consortium) if e.name == "ComponentAborted"]
    assert [e.args["reason"] for e in aborted] == [reason]
    assert not any(e.name == "ModelCommitted" for e in read_events(world.consortium))


def _too_many_windows(text: str) -> str:
    """100 windows of 14 days every 60 days: more than the 5,698 days the data hold."""
    return text.replace("windows = 13", "windows = 100").replace("step_size = 28", "step_size = 60")


def test_too_little_history_aborts_on_chain_and_releases_nothing(tmp_path: Path) -> None:
    world, error = _run(_variant(tmp_path, spec=_too_many_windows))
    assert error.id == "analysis.history.too_short"
    assert "100 windows" in error.message
    _assert_aborted_with(world, "analysis.history.too_short")


def test_a_horizon_longer_than_the_data_is_refused(tmp_path: Path) -> None:
    scenario = _variant(tmp_path, spec=lambda t: t.replace("horizon = 14", "horizon = 9000"))
    world, error = _run(scenario)
    assert error.id == "analysis.history.horizon_too_long"
    _assert_aborted_with(world, error.id)


def test_a_constant_target_is_refused(tmp_path: Path) -> None:
    def flat(t: pa.Table) -> pa.Table:
        return t.set_column(2, "rides", pa.array([12.5] * t.num_rows, type=pa.float64()))

    world, error = _run(_variant(tmp_path, transit=flat))
    assert error.id == "analysis.target.constant"
    _assert_aborted_with(world, error.id)


def test_an_all_null_target_is_refused(tmp_path: Path) -> None:
    def empty(t: pa.Table) -> pa.Table:
        return t.set_column(2, "rides", pa.nulls(t.num_rows, type=pa.float64()))

    world, error = _run(_variant(tmp_path, transit=empty))
    assert error.id == "analysis.target.all_null"
    _assert_aborted_with(world, error.id)


def _refused_by_a_gateway(scenario: Path) -> tuple[_Recorder, DataError]:
    world = _Recorder(load_scenario(scenario), lambda _: None)
    with pytest.raises(DataError) as info:
        world.run("trained")
    return world, info.value


def test_duplicate_timestamps_are_refused_at_the_gateway_with_their_count(
    tmp_path: Path,
) -> None:
    def doubled(t: pa.Table) -> pa.Table:
        return pa.concat_tables([t, t.slice(100, 7)])

    world, error = _refused_by_a_gateway(_variant(tmp_path, transit=doubled))
    assert error.id == "gateway.data.duplicate_keys"
    assert error.context == {"dataset": "ridership", "column": "date", "rows": 7}
    view = world.consortium.task(world.task_id)
    assert view.state is TaskState.ABORTED  # by the party itself, so nobody waits for it
    assert view.model_commitment is None


def test_rows_without_a_time_are_refused_at_the_gateway(tmp_path: Path) -> None:
    def blank(t: pa.Table) -> pa.Table:
        dates = t.column("date").to_pylist()
        dates[10] = dates[2000] = None
        return t.set_column(1, "date", pa.array(dates, type=pa.date32()))

    world, error = _refused_by_a_gateway(_variant(tmp_path, transit=blank))
    assert error.id == "gateway.data.null_time"
    assert error.context["rows"] == 2
    assert world.consortium.task(world.task_id).state is TaskState.ABORTED
    # The survey runs before the gateway connects: this party never acknowledged a runtime.
    acknowledged = [
        e.args["org"] for e in read_events(world.consortium) if e.name == "AttestationAcknowledged"
    ]
    assert "0x" + org_id("transit").hex() not in acknowledged


def test_a_covariate_with_no_overlap_is_refused(tmp_path: Path) -> None:
    def moved(t: pa.Table) -> pa.Table:
        days = pc.subtract(t.column("date").cast(pa.int32()), 40 * 365)
        return t.set_column(0, "date", days.cast(pa.int32()).cast(pa.date32()))

    world, error = _run(_variant(tmp_path, weather=moved))
    assert error.id == "analysis.join.no_overlap"
    assert error.context["dataset"] == "weather"
    _assert_aborted_with(world, error.id)


def test_a_party_with_no_rows_in_the_training_window_is_refused(tmp_path: Path) -> None:
    def later(t: pa.Table) -> pa.Table:  # every row after data_until: all feed, no training
        days = pc.add(t.column("date").cast(pa.int32()), 40 * 365)
        return t.set_column(0, "date", days.cast(pa.int32()).cast(pa.date32()))

    world, error = _refused_by_a_gateway(_variant(tmp_path, weather=later))
    assert error.id == "data.source.empty"
    assert error.context["dataset"] == "weather"
    assert world.consortium.task(world.task_id).state is TaskState.ABORTED
    # Refused at the party's own gateway, before it acknowledged any runtime.
    acknowledged = [
        e.args["org"] for e in read_events(world.consortium) if e.name == "AttestationAcknowledged"
    ]
    assert "0x" + org_id("weather").hex() not in acknowledged


def test_a_refused_task_has_no_release_for_anyone(tmp_path: Path) -> None:
    world, _ = _run(_variant(tmp_path, spec=_too_many_windows))
    # fetch_release checks the chain first: no model commitment, nothing to fetch
    assert len(world.refused) == 3
    assert {e.id for e in world.refused} == {"gateway.release.not_trained"}


class _Tampering(_Recorder):
    """The weather gateway posts a commitment that is not the one of what it sent."""

    def gateway(self, org: str, state: Path) -> Gateway:
        gw = super().gateway(org, state)
        if org == "weather":
            post = gw.session.post_gateway_commitment

            def tampered(tid: bytes, _root: bytes):  # type: ignore[no-untyped-def]
                return post(tid, hashlib.sha256(b"not what was sent").digest())

            gw.session.post_gateway_commitment = tampered  # type: ignore[method-assign]
        return gw


def test_a_commitment_mismatch_disputes_the_task_and_nothing_is_trained(tmp_path: Path) -> None:
    world = _Tampering(load_scenario(bundled_scenario()), lambda _: None)
    with pytest.raises(ChronosealError) as info:
        world.run("trained")
    # the runtime refuses to train, or a gateway learns of the dispute first when it posts
    assert info.value.id in {"analysis.commitment.disputed", "gateway.task.disputed"}
    view = world.consortium.task(world.task_id)
    assert view.state is TaskState.DISPUTED
    assert view.model_commitment is None
    names = [e.name for e in read_events(world.consortium)]
    assert "CommitmentMismatched" in names and "ModelCommitted" not in names


def _anomaly_task(text: str) -> str:
    return (
        text.replace('kind = "forecast"', 'kind = "anomaly"')
        .replace('family = "mlforecast-lightgbm"', 'family = "statsforecast-autoets"')
        .replace("windows = 13", "windows = 4")
        .replace(
            'metrics = ["mase", "smape", "rmse", "coverage"]',
            'metrics = ["anomaly_rate", "mase", "coverage"]',
        )
        .replace(
            'which = ["mase", "smape", "rmse", "coverage"]',
            'which = ["anomaly_rate", "mase"]',
        )
    )


def test_an_anomaly_task_flags_points_outside_the_back_tested_interval(tmp_path: Path) -> None:
    world = _Recorder(load_scenario(_variant(tmp_path, spec=_anomaly_task)), lambda _: None)
    report = world.run("trained")
    assert report.state == "Trained"
    owner = report.releases["transit"]["anomalies"]
    other = report.releases["events"]["anomalies"]
    assert owner and len(owner) == len(other)
    assert all(a["score"] > 0 and a["side"] in {"above", "below"} for a in owner)
    assert all(a["y"] > a["hi"] or a["y"] < a["lo"] for a in owner)
    assert all("y" not in a for a in other)  # only the target party sees its own values
    assert "anomalies" not in report.releases["weather"]  # not a result recipient
    rate = report.releases["weather"]["model"]["metrics"]["anomaly_rate"]
    assert rate == pytest.approx(len(owner) / (4 * 14), abs=1e-6)
    # AutoETS uses no covariates: the others' data cannot change it, and the release says so
    contribution = report.releases["weather"]["contribution"]
    assert contribution["method"] == "not-applicable"
    assert contribution["delta_mase"]["weather"] == 0.0


class _SlowTraining(DemoConsortium):
    """Short-lived runtime identities and a training that outlasts the first of them."""

    validity = timedelta(seconds=8)

    def start_runtime(self, attester=None):  # type: ignore[no-untyped-def]
        runtime_key = Account.create()
        self.chain.fund(runtime_key.address, 10**20)
        runtime = AnalysisRuntime(
            self.consortium,
            self.spec,
            attester=attester_for(self.spec.measurements.analysis.tee, Component.ANALYSIS),
            chain_key=runtime_key.key,
            identity_validity=self.validity,
        )
        runtime.start()
        self.identities = [runtime.identity]
        return runtime

    def run(self, until="serving"):  # type: ignore[no-untyped-def]
        report = super().run(until)
        assert self.runtime is not None
        self.identities.append(self.runtime.identity)  # the one the releases were served with
        return report


def test_a_release_fetched_after_a_training_longer_than_the_identity_works(
    tmp_path: Path,
) -> None:
    slept: list[float] = []

    def slow(stage: str, done: int, total: int) -> None:
        if not slept:  # the training takes longer than the runtime's first certificate
            slept.append(_SlowTraining.validity.total_seconds() + 2)
            time.sleep(slept[0])

    world = _SlowTraining(
        load_scenario(_variant(tmp_path, spec=lambda t: t.replace("windows = 13", "windows = 2"))),
        lambda _: None,
        analysis_progress=slow,
    )
    report = world.run("trained")
    assert slept
    assert world.consortium.task_state(world.task_id) is TaskState.TRAINED
    assert set(report.releases) == {p.org for p in world.spec.participants}
    first, last = world.identities
    assert first is not None and last is not None and first.fingerprint != last.fingerprint


@pytest.mark.parametrize(
    "source",
    [
        "parquet:../data/no-such-file.parquet",  # missing
        "parquet:../data/garbage.parquet",  # not Parquet
        "parquet:../../../outside.parquet",  # outside the party's directory
    ],
)
def test_a_party_whose_source_is_unusable_is_named_with_its_own_id(
    tmp_path: Path, source: str
) -> None:
    """Not the knock-on ``gateway.task.not_running`` of the other gateways, stopped by this
    party's abort of the task: the refusal of weather's own source."""
    scenario = _variant(tmp_path)
    (scenario.parent / "data" / "garbage.parquet").write_bytes(b"not parquet" * 100)
    config = scenario.parent / "parties" / "weather.toml"
    config.write_text(config.read_text().replace("parquet:../data/weather.parquet", source))
    world = _Recorder(load_scenario(scenario), lambda _: None)
    with pytest.raises(ChronosealError) as info:
        world.run("trained")
    assert info.value.id != "gateway.task.not_running"
    assert info.value.id.startswith(("data.", "source.", "sources.")), info.value
