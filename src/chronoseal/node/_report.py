"""The demo's result as one self-contained HTML page: what the task released to one party.

Everything the page shows comes from a :class:`~chronoseal.node.DemoReport`: the release
document the party received (and checked against the chain's metrics digest) and what the
chain says. The page needs no network: one inline stylesheet, no scripts, and every plot
an inline PNG (``data:`` URI) drawn with matplotlib's Agg canvas, never pyplot, so importing
this module leaves matplotlib's global backend alone.
"""

from __future__ import annotations

import base64
import hmac
import io
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from chronoseal._hex import short_hex

from ._demo import DemoReport, TimelineEntry

#: The report plots at most this many series of the back-test sample.
MAX_SERIES = 6
#: Anomalies listed in the table (the rest are counted).
MAX_ANOMALIES = 100

_DPI = 100
_ACTUAL = "#222222"
_JOINT = "#1f5fa8"
_BASELINE = "#d9730d"
_BETTER = "#2e7d32"
_WORSE = "#c62828"
_NEUTRAL = "#9e9e9e"

#: Metrics where a lower value is better; coverage is best closest to the nominal level.
_LOWER_IS_BETTER = {"mase", "smape", "rmse", "mae", "mse", "mape", "crps", "wql"}
_METRIC_ORDER = ["mase", "smape", "rmse", "coverage"]
_METRIC_LABEL = {
    "mase": "MASE",
    "smape": "sMAPE",
    "rmse": "RMSE",
    "coverage": "coverage",
    "anomaly_rate": "anomaly rate",
}
_ENVELOPE = {"task_id", "party", "nonce"}
_SECTIONS = {
    "model": "the joint model's back-test metrics",
    "baseline": "the best single-party baseline",
    "baselines": "the baselines' back-test metrics",
    "folds": "the back-test folds",
    "backtest": "the back-test sample (forecast vs actual)",
    "contribution": "the value of each party's data (contribution)",
    "anomalies": "the flagged anomalies",
    "cost": "what the analysis cost (seconds per phase, fits)",
}
"""What each key of a release document holds, in the order the page lists them."""


def render_report(report: DemoReport, *, task_name: str | None = None) -> str:
    """The HTML page showing ``report.target_party`` what the task released to it.

    ``task_name`` (the spec's ``task.name``) titles the page; the report itself only
    carries the task id.
    """
    party = report.target_party
    doc: Mapping[str, Any] = report.releases.get(party, {}) if party else {}
    level = _level(doc)
    context = {
        "title": task_name or f"task 0x{report.task_id.hex()[:16]}…",
        "task_name": task_name,
        "task_id": "0x" + report.task_id.hex(),
        "state": report.state,
        "simulated": report.tee == "simulated",
        "tee": report.tee,
        "chain": report.chain,
        "contract": report.contract,
        "party": party or "no party",
        "participants": report.participants,
        "approvals": f"{report.approvals}/{len(report.participants)}",
        "approved_by": report.approved_by,
        "model_commitment": report.model_commitment,
        "released": [text for key, text in _SECTIONS.items() if key in doc]
        + sorted(set(doc) - _ENVELOPE - set(_SECTIONS)),
        "nothing_released": _nothing_released(report, doc),
        "digest": _digest_event(report),
        "loaded": _prediction_model_event(report),
        "forecast": _forecast_section(report, doc, level),
        "backtest": _backtest_section(report, doc, level),
        "contribution": _contribution_section(doc),
        "cost": _cost_section(doc),
        "workers": _workers_section(report.workers),
        "anomalies": _anomaly_section(doc),
        "served": _served_section(report, party),
        "streams": [
            {
                "name": p.name,
                "rows": f"{p.rows_sent:,}",
                "bytes": f"{p.bytes_sent:,}",
                "commitment": p.commitment,
                "matched": p.commitment_matched,
            }
            for p in report.parties
        ],
        "events": [
            {
                "block": e.block,
                "tx": e.tx_hash,
                "actor": e.actor,
                "event": e.event,
                "fields": _fields(e.fields),
            }
            for e in report.events
        ],
        "audit": _audit_section(report),
        "own_actuals": "backtest" in doc or any("y" in a for a in doc.get("anomalies") or []),
    }
    return _TEMPLATE.render(**context)


def write_report(path: Path, report: DemoReport, *, task_name: str | None = None) -> None:
    """Write :func:`render_report` to ``path`` atomically (a temporary file beside it, then
    :func:`os.replace`), so a reader never sees half a page."""
    html = render_report(report, task_name=task_name).encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(html)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- sections -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Image:
    src: str
    alt: str


@dataclass(frozen=True)
class _Cell:
    text: str
    best: bool = False


def _audit_section(report: DemoReport) -> dict[str, Any] | None:
    audit = report.audit
    if audit is None:
        return None
    return {
        "verified": audit.verified,
        "events": audit.events_read,
        "passed": sum(c.verdict == "pass" for c in audit.checks),
        "failed": len(audit.failures),
        "not_reached": sum(c.verdict == "not_reached" for c in audit.checks),
        "checks": audit.checks,
        "timeline": [
            {
                "block": t.block,
                "tx": t.tx_hash,
                "time": datetime.fromtimestamp(t.time, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "actor": t.actor,
                "summary": t.summary,
            }
            for t in audit.timeline
        ],
    }


def _nothing_released(report: DemoReport, doc: Mapping[str, Any]) -> str | None:
    if doc:
        return None
    if not report.releases:
        return (
            f"Nothing has been released yet: the task is {report.state}. The analysis "
            "runtime releases results only once the model is trained."
        )
    return f"The task's release rules name no release for {report.target_party or 'this party'}."


def _model_event(report: DemoReport, kind: str) -> TimelineEntry | None:
    # Both runtimes log ModelCommitted; only the analysis runtime's carries a metrics digest.
    return next(
        (
            e
            for e in reversed(report.events)
            if e.event == "ModelCommitted" and e.fields.get("kind") == kind
        ),
        None,
    )


def _digest_event(report: DemoReport) -> dict[str, Any] | None:
    """The metrics digest the releases were checked against: the analysis runtime's."""
    e = _model_event(report, "analysis")
    return None if e is None else {"block": e.block, "digest": e.fields.get("metrics_digest")}


def _prediction_model_event(report: DemoReport) -> dict[str, Any] | None:
    """The model the prediction runtime loaded, and whether it is the one committed."""
    e = _model_event(report, "prediction")
    if e is None:
        return None
    loaded = str(e.fields.get("commitment", ""))
    analysis = _model_event(report, "analysis")
    committed = str(analysis.fields.get("commitment", "")) if analysis else ""
    return {
        "block": e.block,
        "commitment": loaded,
        "matched": bool(committed) and hmac.compare_digest(loaded.lower(), committed.lower()),
    }


def _level(doc: Mapping[str, Any]) -> int | None:
    folds = doc.get("folds")
    if isinstance(folds, Mapping) and isinstance(folds.get("level"), int | float):
        return int(folds["level"])
    for record in doc.get("backtest") or []:
        for key in record:
            if key.startswith("joint-lo-"):
                return int(key.removeprefix("joint-lo-"))
    return None


def _forecast_section(
    report: DemoReport, doc: Mapping[str, Any], level: int | None
) -> dict[str, Any]:
    records: list[dict[str, Any]] = list(doc.get("backtest") or [])
    if not records:
        return {"image": None}
    baseline = doc.get("baseline") or report.released("baseline")
    baseline_name = baseline.get("name") if isinstance(baseline, Mapping) else None
    series = list(dict.fromkeys(str(r["unique_id"]) for r in records))
    shown = series[:MAX_SERIES]
    windows = sorted({str(r["cutoff"]) for r in records})
    image = _forecast_figure(records, shown, baseline_name, level, doc.get("anomalies") or [])
    return {
        "image": image,
        "series": len(series),
        "shown": len(shown),
        "windows": len(windows),
        "baseline": baseline_name,
        "level": level,
    }


def _backtest_section(
    report: DemoReport, doc: Mapping[str, Any], level: int | None
) -> dict[str, Any] | None:
    model = doc.get("model")
    baselines: list[dict[str, Any]] = list(doc.get("baselines") or [])
    best = doc.get("baseline")
    if model is None and not baselines and best is None:
        return None
    if not baselines and best is not None:
        baselines = [best]
    entries: list[tuple[str, str, str, Mapping[str, Any], bool]] = []
    history: list[str] = []
    providers = ", ".join(p.name for p in report.parties) or "all providers"
    if model is not None:
        entries.append(("joint", model.get("family", ""), providers, model["metrics"], False))
        history.append("all")
    owner = (best or {}).get("party") or report.target_party
    best_name = (best or {}).get("name")
    for b in baselines:
        entries.append(
            (b["name"], b.get("family", ""), owner, b.get("metrics", {}), b["name"] == best_name)
        )
        size = b.get("input_size")
        history.append(f"last {size:,}" if isinstance(size, int) else "all")
    names: list[str] = []
    for _, _, _, metrics, _ in entries:
        names.extend(m for m in metrics if m not in names)
    names.sort(key=lambda m: (_METRIC_ORDER.index(m) if m in _METRIC_ORDER else 99, m))
    winners = {m: _winners([e[3].get(m) for e in entries], m, level) for m in names}
    rows = [
        {
            "name": name,
            "family": family,
            "data_of": data_of,
            "joint": i == 0 and model is not None,
            "best_single": is_best,
            "history": history[i],
            "cells": [_Cell(_num(metrics.get(m)), i in winners[m]) for m in names],
        }
        for i, (name, family, data_of, metrics, is_best) in enumerate(entries)
    ]
    columns = [
        (
            f"coverage ({level} % nominal)"
            if m == "coverage" and level is not None
            else _METRIC_LABEL.get(m, m)
        )
        for m in names
    ]
    return {
        "columns": columns,
        "rows": rows,
        "folds": _folds_text(doc.get("folds")),
        "has_coverage": "coverage" in names,
        "level": level,
        "best_single": best_name,
        "owner": owner,
    }


#: The analysis phases in the order they run, as the cost table names them.
_PHASES = {
    "join": "join of the parties' tables",
    "panel": "start of the back-test workers, the panel sent to each",
    "differences": "choice of the target's differencing (the baselines' windows beside it)",
    "back-test": "back-test: every other window of every model and coalition",
    "score": "scores and value of each party",
    "fit": "fit of the released model",
    "seal": "sealing of the model bundle",
}


def _cost_section(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    cost = doc.get("cost")
    if not isinstance(cost, Mapping):
        return None
    seconds: Mapping[str, float] = cost.get("seconds") or {}
    fits: Mapping[str, int] = cost.get("fits") or {}
    work: Mapping[str, float] = cost.get("worker_seconds") or {}
    order = [k for k in _PHASES if k in seconds] + sorted(set(seconds) - set(_PHASES))
    return {
        "phases": [{"phase": _PHASES.get(k, k), "seconds": f"{seconds[k]:,.1f}"} for k in order],
        "total": f"{math.fsum(seconds.values()):,.1f}",
        "groups": [
            {"group": k, "fits": f"{fits[k]:,}", "seconds": f"{work.get(k, 0.0):,.1f}"}
            for k in fits
        ],
        "fits": f"{sum(fits.values()):,}",
        "workers": cost.get("workers"),
        "threads": cost.get("threads_per_worker"),
        "cores": cost.get("cores"),
    }


def _workers_section(workers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per attested Dask worker the analysis runtime started: what it is, the
    runtime's verdict on its evidence, the block its attestation is on chain in (from the
    chain's events, not the runtime's word) and the back-test fits it ran."""
    rows = []
    for w in workers:
        fits: Mapping[str, int] = w.get("fits") or {}
        measurement = w.get("measurement")
        rows.append(
            {
                "name": w["name"],
                "tee": w.get("tee") or "",
                "measurement": _short(str(measurement)) if measurement else "",
                "accepted": w.get("appraisal") == "accepted",
                "refused": w.get("refused"),
                "block": w.get("attestation_block"),
                "on_chain": bool(w.get("on_chain")),
                "fits": sum(fits.values()),
                "groups": ", ".join(f"{k} {v}" for k, v in fits.items()),
                "lost": bool(w.get("lost")),
            }
        )
    return rows


def _contribution_section(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    c = doc.get("contribution")
    if not isinstance(c, Mapping):
        return None
    deltas: dict[str, float | None] = dict(c.get("delta_mase") or {})
    errors: Mapping[str, Any] = c.get("standard_error") or {}
    rows = [
        {
            "party": party,
            "delta": _delta(value),
            "kind": "none" if value is None else _sign_class(value),
            "error": _num(errors[party]) if party in errors else "",
        }
        for party, value in deltas.items()
    ]
    return {
        "sampled": bool(errors),
        "method": c.get("method", ""),
        "reference": c.get("reference", ""),
        "coalitions": c.get("coalitions"),
        "note": c.get("note") or "",
        "rows": rows,
        "image": _contribution_figure(deltas, str(c.get("reference", ""))),
        "total": _delta(math.fsum(v for v in deltas.values() if v is not None))
        if any(v is not None for v in deltas.values())
        else None,
    }


def _anomaly_section(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    items = doc.get("anomalies")
    if items is None:
        return None
    items = list(items)
    bounds = any("y" in a for a in items)
    rows = [
        {
            "series": _short(str(a.get("unique_id", ""))),
            "series_full": str(a.get("unique_id", "")),
            "ds": _when(str(a.get("ds", ""))),
            "score": _num(a.get("score")),
            "side": str(a.get("side", "")),
            "y": _num(a.get("y")),
            "lo": _num(a.get("lo")),
            "hi": _num(a.get("hi")),
        }
        for a in items[:MAX_ANOMALIES]
    ]
    return {"rows": rows, "total": len(items), "bounds": bounds}


# --- figures --------------------------------------------------------------------------


def _forecast_figure(
    records: Sequence[Mapping[str, Any]],
    series: Sequence[str],
    baseline: str | None,
    level: int | None,
    anomalies: Iterable[Mapping[str, Any]],
) -> _Image:
    ncols = 1 if len(series) == 1 else 2
    nrows = math.ceil(len(series) / ncols)
    fig = Figure(figsize=(9.6, 0.7 + 2.7 * nrows), dpi=_DPI, layout="constrained")
    lo_key = f"joint-lo-{level}" if level is not None else None
    hi_key = f"joint-hi-{level}" if level is not None else None
    band = f"{level} % interval" if level is not None else "interval"
    flagged = [a for a in anomalies if a.get("y") is not None]
    for i, uid in enumerate(series):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        mine = [r for r in records if str(r["unique_id"]) == uid]
        cutoffs = sorted({str(r["cutoff"]) for r in mine})
        for j, cutoff in enumerate(cutoffs):
            first = i == 0 and j == 0
            window = sorted(
                (r for r in mine if str(r["cutoff"]) == cutoff), key=lambda r: _time(r["ds"])
            )
            x = _times(r["ds"] for r in window)
            ax.vlines(
                _times([cutoff]),
                0,
                1,
                transform=ax.get_xaxis_transform(),
                colors="#bbbbbb",
                linewidth=0.8,
                linestyles=":",
                zorder=0,
                label="window cutoff" if first else "_cutoff",
            )
            if lo_key is not None and hi_key is not None:
                lo, hi = _values(window, lo_key), _values(window, hi_key)
                if any(math.isfinite(v) for v in lo + hi):
                    ax.fill_between(
                        x,
                        lo,
                        hi,
                        color=_JOINT,
                        alpha=0.18,
                        linewidth=0,
                        label=f"joint {band}" if first else "_band",
                    )
            ax.plot(
                x,
                _values(window, "y"),
                color=_ACTUAL,
                linewidth=1.4,
                label="actual" if first else "_actual",
            )
            ax.plot(
                x,
                _values(window, "joint"),
                color=_JOINT,
                linewidth=1.4,
                label="joint model" if first else "_joint",
            )
            if baseline is not None and any(baseline in r for r in window):
                ax.plot(
                    x,
                    _values(window, baseline),
                    color=_BASELINE,
                    linewidth=1.2,
                    linestyle="--",
                    label=f"best single-party baseline ({_plain(baseline)})"
                    if first
                    else "_baseline",
                )
        if mine:
            start = min(_time(r["ds"]) for r in mine)
            end = max(_time(r["ds"]) for r in mine)
            marks = [
                a
                for a in flagged
                if str(a.get("unique_id")) == uid and start <= _time(a["ds"]) <= end
            ]
            if marks:
                ax.scatter(
                    _times(a["ds"] for a in marks),
                    _values(marks, "y"),
                    color=_WORSE,
                    marker="x",
                    zorder=5,
                    label="flagged anomaly",
                )
        ax.set_title(f"series {_plain(_short(uid))}", fontsize=10, loc="left")
        # matplotlib.dates has no annotations: the two calls below are untyped.
        locator = AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        ax.tick_params(labelsize=8)
        ax.grid(axis="y", color="#eeeeee", linewidth=0.8)
        _tidy(ax)
    found: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            found.setdefault(label, handle)
    handles = dict(sorted(found.items(), key=lambda item: _legend_rank(item[0])))
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside upper center",
            ncols=len(handles) if len(handles) <= 5 else math.ceil(len(handles) / 2),
            fontsize=8,
            frameon=False,
        )
    what = ", ".join(_short(s) for s in series)
    alt = (
        f"Forecast vs actual for {len(series)} series ({what}) over the last back-test "
        f"windows: actual values, the joint model with its {band}"
        + (f", and the best single-party baseline {baseline} (dashed)" if baseline else "")
        + "; dotted vertical lines mark the window cutoffs."
    )
    return _Image(_png(fig), alt)


_LEGEND_ORDER = ("actual", "joint model", "joint ", "best single-party", "flagged", "window")


def _legend_rank(label: str) -> int:
    return next((n for n, p in enumerate(_LEGEND_ORDER) if label.startswith(p)), 99)


def _served_section(report: DemoReport, party: str) -> dict[str, Any] | None:
    """What the prediction runtime served the party, and the audit of every request."""
    if report.predictions is None:
        return None
    frame = report.forecasts.get(party)
    image = (
        _served_figure(frame, report.with_input.get(party))
        if frame is not None and len(frame)
        else None
    )
    summary = report.predictions
    return {
        "image": image,
        "rows": 0 if frame is None else len(frame),
        "served": summary.get("served", 0),
        "refused": summary.get("refused", 0),
        "refusals": sorted(summary.get("refusals", {}).items()),
        "batches": summary.get("audit_batches", 0),
        "audited": summary.get("audited", 0),
        "verified": summary.get("audit_verified", 0),
        "lost": summary.get("audit_lost", 0),
    }


def _served_figure(frame: Any, with_input: tuple[Any, Any] | None = None) -> _Image | None:
    """The served forecast with its interval; with the party's own newest observations
    sent along, those rows and the forecast served after them too."""
    model = _model_column(frame)
    if model is None:
        return None
    fig = Figure(figsize=(7.5, 3.0), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    count = frame["unique_id"].nunique()
    # Every series is drawn alike, so each kind of line is named once in the legend.
    for index, (_uid, part) in enumerate(frame.groupby("unique_id", sort=True)):
        first = index == 0
        times = _times(part["ds"].astype(str))
        lo = next((c for c in part.columns if c.startswith(f"{model}-lo-")), None)
        hi = next((c for c in part.columns if c.startswith(f"{model}-hi-")), None)
        if lo is not None and hi is not None:
            label = f"{lo.rsplit('-', 1)[-1]} % interval" if first else None
            ax.fill_between(times, part[lo], part[hi], alpha=0.25, color=_BETTER, label=label)
        label = (f"forecast, {count} series" if count > 1 else "forecast") if first else None
        ax.plot(times, part[model], color=_BETTER, linewidth=1.6, label=label)
    alt = f"served forecast of {count} series, {len(frame)} rows"
    if with_input is not None:
        observed, after = with_input
        ax.plot(
            _times(observed["ds"].astype(str)),
            observed["y"],
            "o",
            color=_WORSE,
            markersize=3,
            label=f"its {len(observed)} newest observations, sent along",
        )
        for index, (_uid, part) in enumerate(after.groupby("unique_id", sort=True)):
            ax.plot(
                _times(part["ds"].astype(str)),
                part[model],
                color=_WORSE,
                linewidth=1.4,
                linestyle="--",
                label="forecast after them" if index == 0 else None,
            )
        alt += f", and {len(after)} rows forecast after {len(observed)} newest observations"
    ax.set_ylabel("forecast", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(color="#eeeeee", linewidth=0.8)
    _tidy(ax)
    return _Image(_png(fig), alt)


def _model_column(frame: Any) -> str | None:
    return next(
        (
            c
            for c in frame.columns
            if c not in ("unique_id", "ds") and "-lo-" not in c and "-hi-" not in c
        ),
        None,
    )


def _contribution_figure(deltas: Mapping[str, float | None], reference: str) -> _Image | None:
    known = [(party, v) for party, v in deltas.items() if v is not None and math.isfinite(v)]
    if not known:
        return None
    known.reverse()  # barh draws bottom-up; keep the table's order top-down
    fig = Figure(figsize=(7.5, 0.9 + 0.45 * len(known)), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    values = [v for _, v in known]
    bars = ax.barh(
        [_plain(p) for p, _ in known],
        values,
        color=[_BETTER if v < 0 else _WORSE if v > 0 else _NEUTRAL for v in values],
        height=0.6,
    )
    ax.bar_label(bars, labels=[_delta(v) for v in values], padding=3, fontsize=8)
    ax.axvline(0, color="#333333", linewidth=0.9)
    span = max(abs(v) for v in values) or 1.0
    ax.set_xlim(min(0.0, min(values)) - 0.3 * span, max(0.0, max(values)) + 0.3 * span)
    ax.set_xlabel(
        f"Δ MASE vs {_plain(reference) or 'the reference'} (negative = better forecasts)",
        fontsize=9,
    )
    ax.tick_params(labelsize=9)
    ax.grid(axis="x", color="#eeeeee", linewidth=0.8)
    ax.set_axisbelow(True)
    _tidy(ax)
    alt = "Δ MASE per party (negative = better): " + "; ".join(
        f"{p} {_delta(v)}" for p, v in reversed(known)
    )
    return _Image(_png(fig), alt)


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)  # attaches the Agg canvas to ``fig``: no global backend involved
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _tidy(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _time(value: Any) -> datetime:
    """An ISO timestamp as a naive UTC datetime (numpy refuses time zones)."""
    t = datetime.fromisoformat(str(value))
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def _times(values: Iterable[Any]) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    return np.array([_time(v) for v in values], dtype="datetime64[us]")


def _values(rows: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    out = []
    for r in rows:
        v = r.get(key)
        out.append(float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan)
    return out


# --- formatting -----------------------------------------------------------------------


def _num(value: Any) -> str:
    """A metric as the page (and the CLI) shows it: four significant digits, — if absent."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:.4g}"


def _delta(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4g}"


def _sign_class(value: float) -> str:
    return "better" if value < 0 else "worse" if value > 0 else "none"


def _winners(values: Sequence[Any], metric: str, level: int | None) -> set[int]:
    """Row indices holding the best value of a column (none if the direction is unknown)."""
    if metric == "coverage":
        if level is None:
            return set()
        target = level / 100

        def key(v: float) -> float:
            return abs(v - target)
    elif metric in _LOWER_IS_BETTER:

        def key(v: float) -> float:
            return v
    else:
        return set()
    scored = {
        i: key(float(v))
        for i, v in enumerate(values)
        if isinstance(v, int | float) and math.isfinite(v)
    }
    if not scored:
        return set()
    best = min(scored.values())
    return {i for i, s in scored.items() if math.isclose(s, best, rel_tol=1e-12, abs_tol=1e-15)}


def _folds_text(folds: Any) -> str | None:
    if not isinstance(folds, Mapping):
        return None
    parts = [
        f"{folds.get('windows', '?')} windows of {folds.get('horizon', '?')} steps, "
        f"a new window every {folds.get('step_size', '?')} steps"
    ]
    if folds.get("level") is not None:
        parts.append(f"{folds['level']} % prediction intervals")
    cutoffs = list(folds.get("cutoffs") or [])
    if cutoffs:
        parts.append(f"cutoffs {_when(str(cutoffs[0]))} … {_when(str(cutoffs[-1]))}")
    if folds.get("series") is not None:
        n = folds["series"]
        parts.append(f"{n} series" if n != 1 else "1 series")
    return "; ".join(parts)


def _when(iso: str) -> str:
    try:
        t = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if (t.hour, t.minute, t.second, t.microsecond) == (0, 0, 0, 0):
        return t.date().isoformat()
    return t.isoformat(sep=" ", timespec="minutes")


def _short(uid: str) -> str:
    return uid if len(uid) <= 12 else uid[:10] + "…"


def _plain(text: str) -> str:
    """Text for matplotlib that it must not read as mathtext."""
    return text.replace("$", r"\$")


def _fields(fields: Mapping[str, Any]) -> str:
    # As the CLI prints them: the task id is in the header, not on every row.
    return short_hex(" ".join(f"{k}={v}" for k, v in fields.items() if k != "task_id"))


# --- template -------------------------------------------------------------------------

# The page is package data (``templates/report.html``), so it ships in the wheel beside
# this module and reads as HTML, not as a Python string.
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("chronoseal.node", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters["short_hex"] = short_hex
_TEMPLATE = _ENV.get_template("report.html")
