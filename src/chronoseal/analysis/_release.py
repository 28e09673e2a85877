"""What leaves the analysis runtime: one release document per party, exactly as ``[release]``
allows, and one digest on chain that commits to all of them.

The format and the parties' check of it live in :mod:`chronoseal.model`.

Nothing about the data itself is released: metrics, baselines and contributions are
aggregates over the back-test; the back-test sample (forecast vs actual, for the report)
goes only to the target party, whose actuals they are, and only if it receives forecasts.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd

from chronoseal.model import DS, ID, ReleaseSet, document_hash, manifest_digest
from chronoseal.spec import TaskKind, TaskSpec

from ._analyse import JOINT, NAIVE, OWN, STAT_NAMES, AnalysisResult, Score

#: The report plots the last windows of at most this many of the target's series.
SAMPLE_WINDOWS = 3
SAMPLE_SERIES = 6
_DIGITS = 8


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{_DIGITS}g}")


def _metrics(score: Score, which: list[str]) -> dict[str, float | None]:
    return {m: _num(score.metrics.get(m)) for m in which}


def _sample(spec: TaskSpec, result: AnalysisResult) -> list[dict[str, Any]]:
    bt = result.backtest
    cutoffs = sorted(bt["cutoff"].unique())[-SAMPLE_WINDOWS:]
    series = sorted(bt[ID].unique())[:SAMPLE_SERIES]
    level = spec.evaluation.level
    cols = [
        JOINT,
        f"{JOINT}-lo-{level}",
        f"{JOINT}-hi-{level}",
        OWN,
        *STAT_NAMES.values(),
        NAIVE,
    ]
    part = bt[bt["cutoff"].isin(cutoffs) & bt[ID].isin(series)]
    return [
        {
            "unique_id": str(row[ID]),
            "ds": pd.Timestamp(row[DS]).isoformat(),
            "cutoff": pd.Timestamp(row["cutoff"]).isoformat(),
            "y": _num(float(row["y"])),
            **{c: _num(float(row[c])) for c in cols if c in part.columns},
        }
        for _, row in part.iterrows()
    ]


def _anomalies(spec: TaskSpec, result: AnalysisResult, owner: bool) -> list[dict[str, Any]]:
    if result.anomalies is None:
        return []
    level = spec.evaluation.level
    out = []
    for _, row in result.anomalies.iterrows():
        item: dict[str, Any] = {
            "unique_id": str(row[ID]),
            "ds": pd.Timestamp(row[DS]).isoformat(),
            "score": _num(float(row["score"])),
            "side": "above" if row["y"] > row[f"{JOINT}-hi-{level}"] else "below",
        }
        if owner:
            item.update(
                {
                    "y": _num(float(row["y"])),
                    "lo": _num(float(row[f"{JOINT}-lo-{level}"])),
                    "hi": _num(float(row[f"{JOINT}-hi-{level}"])),
                }
            )
        out.append(item)
    return out


def build_releases(
    spec: TaskSpec, result: AnalysisResult, *, task_id: bytes, model_commitment: bytes
) -> ReleaseSet:
    """One document per party named by a release rule, each with only what it may see."""
    rules = spec.release
    which = list(rules.metrics.which)
    target = spec.target_dataset().party
    documents: dict[str, dict[str, Any]] = {}
    for p in spec.participants:
        party = p.org
        doc: dict[str, Any] = {}
        if party in rules.metrics.to:
            doc["model"] = {
                "family": result.family,
                "commitment": "0x" + model_commitment.hex(),
                "metrics": _metrics(result.joint, which),
            }
            best = result.best_single
            doc["baseline"] = {
                "party": target,
                "name": best.name,
                "family": best.family,
                "input_size": best.input_size,
                "metrics": _metrics(best, which),
            }
            doc["baselines"] = [
                {
                    "name": s.name,
                    "family": s.family,
                    "input_size": s.input_size,
                    "metrics": _metrics(s, which),
                }
                for s in result.baselines
            ]
            if result.cost is not None:
                doc["cost"] = result.cost.to_json()
            doc["folds"] = {
                "windows": spec.evaluation.windows,
                "horizon": spec.model.horizon,
                "step_size": spec.evaluation.step(spec.model.horizon),
                "level": spec.evaluation.level,
                "cutoffs": result.cutoffs,
                "series": result.series,
            }
        if rules.contribution is not None and party in rules.contribution.to:
            c = result.contribution
            if c is not None:
                doc["contribution"] = {
                    "method": c.method,
                    "reference": c.reference,
                    "delta_mase": {k: _num(v) for k, v in sorted(c.delta_mase.items())},
                    "coalitions": c.coalitions,
                    "note": c.note,
                }
                if c.standard_error is not None:
                    doc["contribution"]["standard_error"] = {
                        k: _num(v) for k, v in sorted(c.standard_error.items())
                    }
        if party in rules.forecasts.to:
            if party == target:
                doc["backtest"] = _sample(spec, result)
            if spec.task.kind is TaskKind.ANOMALY:
                doc["anomalies"] = _anomalies(spec, result, owner=party == target)
        if doc:
            doc.update({"task_id": "0x" + task_id.hex(), "party": party})
            doc["nonce"] = os.urandom(16).hex()
            documents[party] = doc
    manifest = {
        "format": 1,
        "task_id": "0x" + task_id.hex(),
        "model_commitment": "0x" + model_commitment.hex(),
        "parties": {party: document_hash(doc) for party, doc in sorted(documents.items())},
    }
    return ReleaseSet(manifest, manifest_digest(manifest), documents)
