"""The HTML report's promises: one self-contained file that shows a party what was released.

Guards that ``write_report`` / ``render_report`` write a page that opens with no network (no
http(s) resources, no scripts, no stylesheet links; every plot an inline PNG that decodes),
that the back-test and contribution tables carry the released values as displayed, that a
party without a back-test sample or contributions still gets a page that says so, that
names and event fields are HTML-escaped, and that ``chronoseal demo --report`` writes it.
The reports are built by hand, modelled on a real demo run; no chain is started.
"""

from __future__ import annotations

import base64
import io
import math
import re
from dataclasses import replace
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from chronoseal.cli import app
from chronoseal.ledger import ChainStats
from chronoseal.node import DemoReport, PartyReport, TimelineEntry
from chronoseal.node._report import render_report, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASK_ID = bytes.fromhex("9d50219c6defb7709061cad900ebd7360e23973302bb06baaffea0b296c8c464")
MODEL = "0x5fb24b0bfb8b19650eb95cd2983726f4b0c31275e5c3d262519eca55cf60176f"
PARTIES = ["transit", "weather", "events"]
CUTOFFS = [
    "2015-09-13T00:00:00",
    "2015-10-11T00:00:00",
    "2015-11-08T00:00:00",
    "2015-12-06T00:00:00",
    "2016-01-03T00:00:00",
    "2016-01-31T00:00:00",
    "2016-02-28T00:00:00",
    "2016-03-27T00:00:00",
    "2016-04-24T00:00:00",
    "2016-05-22T00:00:00",
    "2016-06-19T00:00:00",
    "2016-07-17T00:00:00",
    "2016-08-14T00:00:00",
]
HEX_SERIES = "3f9a0c1be2d47a65c0ffee1234567890abcdef"
DIGEST = "0x42266a3f0d5b9b1e6f3c1d2e4a5b6c7d8e9f00112233445566778899aabbccdd"
ZERO32 = "0x" + "00" * 32
ANALYSIS_RT = "0x" + "a1" * 20
PREDICTION_RT = "0x" + "b2" * 20


def metrics(mase: float, smape: float, rmse: float, coverage: float | None) -> dict[str, Any]:
    return {"coverage": coverage, "mase": mase, "rmse": rmse, "smape": smape}


def backtest(series: list[str], level: int = 80) -> list[dict[str, Any]]:
    """The last three windows of 14 days per series, as ``_release._sample`` writes them."""
    out = []
    for s, uid in enumerate(series):
        for cutoff in CUTOFFS[-3:]:
            start = datetime.fromisoformat(cutoff)
            for h in range(1, 15):
                ds = start + timedelta(days=h)
                weekend = ds.weekday() >= 5
                y = (6.0 if weekend else 22.0) + s + 0.4 * math.sin(h)
                joint = y + 0.3 * math.cos(h)
                out.append(
                    {
                        "unique_id": uid,
                        "ds": ds.isoformat(),
                        "cutoff": start.isoformat(),
                        "y": None if (s, h) == (0, 7) else round(y, 6),
                        "joint": round(joint, 6),
                        f"joint-lo-{level}": round(joint - 0.6, 6),
                        f"joint-hi-{level}": round(joint + 0.6, 6),
                        "own": round(joint + 0.1, 6),
                        "AutoETS": round(y - 1.5, 6),
                        "SeasonalNaive": None if h == 1 else round(y + 1.0, 6),
                    }
                )
    return out


def release(
    party: str, *, sample: list[str] | None = None, contribution: bool = True
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": {
            "family": "mlforecast-lightgbm",
            "commitment": MODEL,
            "metrics": metrics(0.60442949, 0.031333319, 0.95620738, 0.63736264),
        },
        "baseline": {
            "party": "transit",
            "name": "own",
            "family": "mlforecast-lightgbm",
            "metrics": metrics(0.60388159, 0.03041915, 0.9823872, 0.64835165),
        },
        "baselines": [
            {
                "name": "own",
                "family": "mlforecast-lightgbm",
                "metrics": metrics(0.60388159, 0.03041915, 0.9823872, 0.64835165),
            },
            {
                "name": "AutoETS",
                "family": "statsforecast-autoets",
                "metrics": metrics(1.0568938, 0.04644137, 1.7426314, None),
            },
            {
                "name": "SeasonalNaive",
                "family": "seasonal-naive",
                "metrics": metrics(1.0878563, 0.049531135, 2.185267, 0.92857143),
            },
        ],
        "folds": {
            "windows": 13,
            "horizon": 14,
            "step_size": 28,
            "level": 80,
            "cutoffs": CUTOFFS,
            "series": 1,
        },
    }
    if contribution:
        doc["contribution"] = {
            "method": "shapley",
            "reference": "SeasonalNaive",
            "delta_mase": {
                "events": -0.006851943,
                "transit": -0.48397467,
                "weather": 0.0073998471,
            },
            "coalitions": 4,
            "note": "",
        }
    if sample is not None:
        doc["backtest"] = backtest(sample)
    doc.update({"task_id": "0x" + TASK_ID.hex(), "party": party, "nonce": "e755ba34" * 4})
    return doc


def model_committed(block: int, kind: str, commitment: str, digest: str = ZERO32) -> TimelineEntry:
    """As the demo reads the contract's ModelCommitted back (full-length values)."""
    runtime = ANALYSIS_RT if kind == "analysis" else PREDICTION_RT
    return TimelineEntry(
        block,
        "0x" + f"{block:02x}" * 32,
        f"{kind} runtime",
        "ModelCommitted",
        {
            "task_id": "0x" + TASK_ID.hex(),
            "kind": kind,
            "component": runtime,
            "commitment": commitment,
            "metrics_digest": digest,
        },
    )


def events(extra: dict[str, Any] | None = None) -> list[TimelineEntry]:
    tx = "0x" + "ab" * 32
    return [
        TimelineEntry(5, tx, "deployer", "MemberAdded", {"org": "transit", "name": "transit"}),
        TimelineEntry(
            16,
            tx,
            "transit",
            "TaskApproved",
            {
                "task_id": "0x" + TASK_ID.hex(),
                "org": "transit",
                "approvals": "1/3",
                "relayed": False,
            },
        ),
        model_committed(30, "analysis", MODEL, DIGEST),
        *([TimelineEntry(31, tx, "events", "Note", extra)] if extra else []),
    ]


def demo_report(
    releases: dict[str, dict[str, Any]] | None = None,
    *,
    names: list[str] | None = None,
    target: str = "transit",
    state: str = "Trained",
    extra_event: dict[str, Any] | None = None,
    streamed: bool = True,
) -> DemoReport:
    names = names or PARTIES
    if releases is None:
        releases = {p: release(p, sample=[HEX_SERIES] if p == target else None) for p in names}
    return DemoReport(
        chain=ChainStats(
            kind="embedded",
            chain_id=131277322940537,
            blocks=31,
            transactions=30,
            gas_used=8659649,
        ),
        contract="0xBf036EC1e0aA34F1802d5b3EdDEEE488baBcBbDf",
        task_id=TASK_ID,
        state=state,
        participants=names,
        approvals=len(names),
        approved_by=names,
        events=events(extra_event),
        parties=[
            PartyReport(n, 5698, 239816 + i, "0x" + f"{i:02x}" * 32, True)
            for i, n in enumerate(names)
        ]
        if streamed
        else [],
        model_commitment=MODEL if releases else None,
        releases=releases,
        target_party=target,
    )


class _Page(HTMLParser):
    """The images and the tables (rows of cell texts) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def table(self, first_header: str) -> list[list[str]]:
        return next(t for t in self.tables if t and t[0] and t[0][0] == first_header)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_report_is_one_file_that_needs_no_network(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.html"
    write_report(path, demo_report())
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["report.html"], "no temp file left"
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://", html, re.IGNORECASE)
    assert not re.search(r"<script\b", html, re.IGNORECASE)
    assert not re.search(r"<link\b", html, re.IGNORECASE)
    assert not re.search(r"@import|url\(", html, re.IGNORECASE)
    assert "tee: simulated" in html
    assert "What the task released to <strong>transit</strong>" in html
    # Written again in place: replaced whole, still one file.
    write_report(path, demo_report(target="weather"))
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
    assert "What the task released to <strong>weather</strong>" in path.read_text("utf-8")


def test_every_image_is_an_inline_png_that_decodes(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_report(path, demo_report())
    images = parse(path.read_text(encoding="utf-8")).images
    assert len(images) == 2, "forecast vs actual and contributions"
    for img in images:
        src = img["src"] or ""
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert data.startswith(PNG_SIGNATURE)
        pixels = imread(io.BytesIO(data), format="png")
        assert pixels.shape[0] > 0 and pixels.shape[1] > 0
        assert img["alt"]
    assert "80 % interval" in (images[0]["alt"] or "")


def test_tables_show_the_released_values_as_displayed() -> None:
    html = render_report(demo_report())
    page = parse(html)
    backtest = page.table("model")
    assert backtest[0] == [
        "model",
        "family",
        "data of",
        "history fitted on (periods per series)",
        "MASE",
        "sMAPE",
        "RMSE",
        "coverage (80 % nominal)",
    ]
    assert backtest[1] == [
        "joint",
        "mlforecast-lightgbm",
        "transit, weather, events",
        "all",
        "0.6044",
        "0.03133",
        "0.9562",
        "0.6374",
    ]
    assert backtest[2][0] == "own (best single-party baseline)"
    assert backtest[2][4:] == ["0.6039", "0.03042", "0.9824", "0.6484"]
    assert backtest[3][:3] == ["AutoETS", "statsforecast-autoets", "transit"]
    assert backtest[3][4:] == ["1.057", "0.04644", "1.743", "—"], "a null metric shows as —"
    assert backtest[4][4:] == ["1.088", "0.04953", "2.185", "0.9286"]
    # The best per column is bold: own's MASE and sMAPE, the joint RMSE, and the coverage
    # closest to the nominal 80 %.
    for best in ("0.6039", "0.03042", "0.9562", "0.9286"):
        assert f"<strong>{best}</strong>" in html
    assert "<strong>0.6044</strong>" not in html
    text = text_of(html)
    assert "13 windows of 14 steps, a new window every 28 steps" in text
    assert "cutoffs 2015-09-13 … 2016-08-14" in text

    contribution = page.table("party")
    assert contribution[1:] == [
        ["events", "-0.006852"],
        ["transit", "-0.484"],
        ["weather", "+0.0074"],
        ["sum", "-0.4834"],
    ]
    assert "reference SeasonalNaive" in text and "shapley" in text

    streams = page.tables[-2]
    assert streams[0][0] == "party" and streams[1][:3] == ["transit", "5,698", "239,816"]
    timeline = page.tables[-1]
    assert timeline[0] == ["block", "actor", "event", "key fields"]
    assert timeline[2] == [
        "16",
        "transit",
        "TaskApproved",
        "org=transit approvals=1/3 relayed=False",
    ]


def test_a_party_without_a_sample_or_contributions_is_told_so() -> None:
    releases = {p: release(p, contribution=False) for p in PARTIES}
    html = render_report(demo_report(releases, target="transit"))
    page = parse(html)
    assert page.images == []
    text = text_of(html)
    assert "Not released to transit: the back-test sample (forecast vs actual)." in text
    assert "Not released to transit: the value of each party's data (contribution)." in text
    assert page.table("model")[1][4] == "0.6044", "what was released is still shown"


def test_a_task_that_released_nothing_still_renders() -> None:
    html = render_report(demo_report({}, state="Approved", streamed=False))
    text = text_of(html)
    assert "Nothing has been released yet: the task is Approved." in text
    assert "Not released to transit: the back-test metrics" in text
    assert "No data was streamed: the task is Approved." in text
    assert parse(html).images == []


def test_only_the_first_six_series_are_plotted() -> None:
    series = [f"{i:02d}" + HEX_SERIES for i in range(7)]
    releases = {"transit": release("transit", sample=series)}
    text = text_of(render_report(demo_report(releases)))
    assert "windows of 6 series (of 7 in the sample)" in text


def test_names_and_event_fields_are_escaped() -> None:
    odd = "<b>O'Brien & Co $5</b>"
    names = ["transit", odd]
    releases = {"transit": release("transit", sample=[HEX_SERIES])}
    releases["transit"]["contribution"]["delta_mase"] = {"transit": -0.48, odd: -0.01}
    html = render_report(
        demo_report(
            releases,
            names=names,
            extra_event={"memo": '<script>alert("x")</script>', "org": odd},
        )
    )
    assert "<b>" not in html and "<script>" not in html
    assert "&lt;b&gt;O&#39;Brien &amp; Co $5&lt;/b&gt;" in html
    assert "memo=&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert [row[0] for row in parse(html).table("party")[1:3]] == ["transit", odd]


def facts(html: str) -> dict[str, str]:
    """The header's ``<dt>``/``<dd>`` pairs as text."""
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", html, flags=re.S)
    return {text_of(k): text_of(v) for k, v in pairs}


def test_the_header_shows_the_analysis_digest_and_the_prediction_match_apart() -> None:
    # As on chain: the analysis runtime commits model and digest (block 30), the prediction
    # runtime later logs the model it loaded with an empty digest (block 34).
    report = demo_report()
    report.events.append(model_committed(34, "prediction", MODEL))
    header = facts(render_report(report))
    assert header["metrics digest (on chain)"] == (
        f"{DIGEST} (the analysis runtime's ModelCommitted, block 30)"
    )
    assert header["prediction runtime's model"] == (
        f"{MODEL} (ModelCommitted, block 34): matches the committed model"
    )


def test_the_header_says_when_the_prediction_runtime_loaded_another_model() -> None:
    report = demo_report()
    report.events.append(model_committed(34, "prediction", "0x" + "ee" * 32))
    header = facts(render_report(report))
    assert header["metrics digest (on chain)"].startswith(DIGEST)
    assert header["prediction runtime's model"].endswith("does NOT match the committed model")


def test_the_event_table_shortens_hashes_for_people_only() -> None:
    page = parse(render_report(demo_report()))
    fields = next(row[-1] for row in page.table("block") if "ModelCommitted" in row)
    assert f"commitment={MODEL[:10]}…" in fields and MODEL not in fields


def test_demo_report_option_writes_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chronoseal.node as node

    def ran(scenario: node.Scenario, *_: object, **__: object) -> node.RunResult:
        return node.RunResult(scenario, demo_report(), None)  # type: ignore[arg-type]

    monkeypatch.setattr(node, "run_scenario", ran)
    path = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["demo", "--report", str(path)])
    assert result.exit_code == 0, result.output
    assert "report written to" in result.output
    assert path.is_file() and "Back-test" in path.read_text(encoding="utf-8")


WORKER_CODE = "0x6a10f00acd047938ac09ac0cf87f356b5a604451c5edcfc3601be531fb483ad2"


def worker(
    name: str, block: int | None, fits: dict[str, int], lost: bool = False
) -> dict[str, Any]:
    """A worker record as ``chronoseal run --workers 2`` wrote it in its JSON summary."""
    doc: dict[str, Any] = {
        "name": name,
        "tee": "simulated",
        "measurement": WORKER_CODE,
        "evidence_hash": "0x" + "73" * 32,
        "certificate_fingerprint": "0x" + "5a" * 32,
        "appraisal": "accepted",
        "on_chain": block is not None,
        "fits": fits,
        "lost": lost,
    }
    if block is not None:
        doc.update(attestation_block=block, attestation_tx="0x" + "ab" * 32)
    return doc


def test_the_workers_section_shows_each_worker_its_verdict_block_and_fits() -> None:
    report = demo_report()
    assert "<h2>Workers</h2>" not in render_report(report), "no workers, no section"
    report = replace(
        report,
        workers=[
            worker("worker-0", 21, {"baselines": 9, "coalitions": 9, "joint": 7, "own": 8}),
            worker("worker-1", 22, {"baselines": 17, "joint": 6}, lost=True),
            worker("worker-2", None, {}),
            {
                "name": "worker-3",
                "appraisal": "refused",
                "refused": "attest.measurement.not_approved",
            },
        ],
    )
    page = parse(render_report(report))
    rows = page.table("worker")
    assert rows[0] == [
        "worker",
        "TEE",
        "measurement",
        "appraisal",
        "attestation block",
        "fits",
        "of",
    ]
    short = WORKER_CODE[:10] + "…"
    assert rows[1] == [
        "worker-0",
        "simulated",
        short,
        "accepted",
        "21",
        "33",
        "baselines 9, coalitions 9, joint 7, own 8",
    ]
    assert rows[2][0].startswith("worker-1 (lost during the run")
    assert rows[3][3:5] == ["accepted", "not on chain"]
    assert rows[4][:5] == [
        "worker-3",
        "",
        "",
        "refused attest.measurement.not_approved",
        "",
    ]
