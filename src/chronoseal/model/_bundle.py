"""The sealed model bundle: what the analysis runtime commits on chain and hands over.

Layout (every length big-endian)::

    b"chronoseal-model/1\\n" ‖ u32 len ‖ manifest (RFC 8785 JSON) ‖ (u64 len ‖ part)*

The manifest names the family, the feature recipe, the series and one entry per part
(name, media type, size, SHA-256). Parts are in formats that are not code wherever the
library allows: LightGBM's text model, Arrow IPC for the training history and conformity
scores. statsforecast models exist only as pickles; such a part is produced and consumed
only inside attested runtimes, and :func:`open_bundle` checks the whole bundle's SHA-256
against the on-chain commitment before it parses a single byte.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import struct
from dataclasses import dataclass
from typing import Any

import pandas as pd
import rfc8785

from chronoseal._decode import loads_json
from chronoseal.errors import ModelError

from ._common import ARROW, Fitted, Part, arrow_bytes, from_arrow, quiet_libraries
from ._features import DS, ID, Recipe, model_frame
from ._grid import Grid
from ._registry import family_of

MAGIC = b"chronoseal-model/1\n"
#: Refuse absurd sizes before allocating anything for them.
MAX_MANIFEST = 1 << 20

__all__ = ["MAGIC", "LoadedModel", "Part", "commitment", "open_bundle", "seal"]


def seal(fitted: Fitted, *, task_id: bytes, name: str) -> bytes:
    """Serialize a fitted model into bundle bytes; its SHA-256 is the model commitment."""
    recipe = fitted.recipe
    parts, intervals = family_of(recipe.family).seal(fitted, name)
    if fitted.past is not None:
        parts.append(Part("past_only", ARROW, arrow_bytes(fitted.past)))
    last = fitted.train.groupby(ID, sort=True)[DS].max()
    manifest: dict[str, Any] = {
        "format": 1,
        "task_id": "0x" + task_id.hex(),
        "family": recipe.family,
        "model_name": name,
        "recipe": recipe.to_json(),
        "intervals": intervals,
        "series": {str(k): pd.Timestamp(v).isoformat() for k, v in last.items()},
        "parts": [
            {
                "name": p.name,
                "media_type": p.media_type,
                "size": len(p.data),
                "sha256": hashlib.sha256(p.data).hexdigest(),
            }
            for p in parts
        ],
    }
    head = rfc8785.dumps(manifest)
    out = io.BytesIO()
    out.write(MAGIC)
    out.write(struct.pack(">I", len(head)))
    out.write(head)
    for p in parts:
        out.write(struct.pack(">Q", len(p.data)))
        out.write(p.data)
    return out.getvalue()


def commitment(bundle: bytes) -> bytes:
    return hashlib.sha256(bundle).digest()


@dataclass
class LoadedModel:
    """A bundle opened after its commitment checked: forecasts ``h`` steps per series."""

    manifest: dict[str, Any]
    recipe: Recipe
    history: pd.DataFrame
    _model: Any
    past: pd.DataFrame | None = None
    #: statsforecast only: apply the fitted models to ``history`` (newer than the fit).
    _forward: bool = False

    @property
    def series(self) -> list[str]:
        return sorted(self.manifest["series"])

    def predict(
        self, h: int, future: pd.DataFrame | None = None, level: int | None = None
    ) -> pd.DataFrame:
        """statsforecast's long format: ``unique_id``, ``ds``, the model, ``-lo-``/``-hi-``.

        ``future`` holds the future-known covariates for the next ``h`` periods (past-only
        ones enter as lags, computed here from ``history``).
        """
        grid = Grid.parse(self.recipe.freq)
        family = family_of(self.recipe.family)
        name = str(self.manifest["model_name"])
        with quiet_libraries():
            x_df = _future_inputs(self.recipe, self.history, future, h, grid, self.past)
            out = family.predict(
                self._model, self.history, name, h, x_df, level, grid, self._forward
            )
        return pd.DataFrame(out).reset_index(drop=True).rename(columns=lambda c: str(c))

    def with_observations(self, rows: pd.DataFrame) -> LoadedModel:
        """The same fitted model with its history extended by newer observations, so its
        forecasts start after them; nothing is refit and ``self`` is left as it was.

        ``rows`` holds ``unique_id``, ``ds``, ``y`` and the raw covariates the recipe uses
        (future-known ones at their own times, past-only ones raw: their lags are built
        here), strictly after each series' history and on the model's grid (the caller
        checks that). LightGBM's state is rebuilt over the longer history the way
        :func:`open_bundle` builds it (same booster, same conformity scores); statsforecast
        models are applied to it with ``forward``, their fitted parameters unchanged.
        """
        recipe = self.recipe
        grid = Grid.parse(recipe.freq)
        new = rows[[ID, DS, "y", *recipe.future_known]].copy()
        past = self.past
        if recipe.past_only:
            lagged, both = _past_lags(recipe, past, rows[[ID, DS, *recipe.past_only]])
            new = new.merge(lagged, on=[ID, DS], how="left")
            keep = max(k for ks in recipe.past_only.values() for k in ks)
            past = both.groupby(ID, sort=False).tail(keep).reset_index(drop=True)
        family = family_of(recipe.family)
        new = family.model_inputs(new, recipe, grid)
        columns = list(self.history.columns)
        missing = [c for c in columns if c not in new.columns]
        if missing:
            raise ModelError(
                f"the new observations lack {', '.join(missing)}", id="model.predict.missing_input"
            )
        history = pd.concat([self.history, new[columns]], ignore_index=True)
        history = history.sort_values([ID, DS], kind="stable").reset_index(drop=True)
        model, forward = family.extend(
            self._model, history, recipe, grid, str(self.manifest["model_name"])
        )
        return LoadedModel(self.manifest, recipe, history, model, past, _forward=forward)


def _past_lags(
    recipe: Recipe, past: pd.DataFrame | None, rows: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The lag columns of the past-only covariates at ``rows``' times (``unique_id``, ``ds``,
    ``<column>_lag<k>``), over the bundle's recent raw values followed by ``rows``' own
    (absent at forecast times: every lag used there is already observed); and that
    concatenation, the recent raw values from then on."""
    if past is None:
        raise ModelError(
            "the bundle lacks the recent values of its past-only covariates",
            id="model.bundle.malformed",
        )
    raw = list(recipe.past_only)
    both = pd.concat([past[[ID, DS, *raw]], rows], ignore_index=True)
    both = both.sort_values([ID, DS], kind="stable").reset_index(drop=True)
    lagged = model_frame(both.assign(y=0.0), recipe.with_covariates([], raw))
    return lagged.drop(columns=["y"]), both


def _future_inputs(
    recipe: Recipe,
    history: pd.DataFrame,
    future: pd.DataFrame | None,
    h: int,
    grid: Grid,
    past: pd.DataFrame | None = None,
) -> pd.DataFrame | None:
    """The covariate inputs for the next ``h`` periods, or None if the model takes none."""
    family = family_of(recipe.family)
    if not family.future_inputs_needed(recipe):
        return None
    last = history.groupby(ID, sort=True)[DS].max()
    frame = pd.DataFrame(
        [
            (uid, t)
            for uid, end in last.items()
            for t in pd.date_range(end, periods=h + 1, freq=grid.pandas)[1:]
        ],
        columns=[ID, DS],
    )
    if recipe.future_known:
        if future is None:
            raise ModelError(
                f"forecasting needs the future values of {', '.join(recipe.future_known)}",
                id="model.predict.missing_future",
            )
        frame = frame.merge(future[[ID, DS, *recipe.future_known]], on=[ID, DS], how="left")
    if recipe.past_only:
        lagged, _ = _past_lags(recipe, past, frame[[ID, DS]])
        frame = frame.merge(lagged, on=[ID, DS], how="left")
    return family.model_inputs(frame, recipe, grid)


def open_bundle(bundle: bytes, expected: bytes) -> LoadedModel:
    """Check the bundle against its on-chain commitment, then (only then) load it."""
    if not hmac.compare_digest(commitment(bundle), expected):
        raise ModelError(
            "the model bundle does not hash to the commitment on chain; it was not loaded",
            id="model.bundle.commitment_mismatch",
        )
    manifest, parts = _split(bundle)
    family = family_of(str(manifest.get("family")))
    try:
        recipe = Recipe.from_json(manifest["recipe"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError("the bundle's manifest is malformed", id="model.bundle.malformed") from exc
    if family.name != recipe.family:
        raise ModelError("the bundle's manifest names two families", id="model.bundle.malformed")
    history = from_arrow(parts["history"])
    past = from_arrow(parts["past_only"]) if "past_only" in parts else None
    grid = Grid.parse(recipe.freq)
    model = family.load(manifest, parts, history, recipe, grid)
    return LoadedModel(manifest, recipe, history, model, past)


def _split(bundle: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    if not bundle.startswith(MAGIC) or len(bundle) < len(MAGIC) + 4:
        raise ModelError("not a chronoseal model bundle", id="model.bundle.malformed")
    at = len(MAGIC)
    (size,) = struct.unpack_from(">I", bundle, at)
    at += 4
    if size > MAX_MANIFEST or at + size > len(bundle):
        raise ModelError("the bundle's manifest is truncated", id="model.bundle.malformed")
    try:
        manifest = loads_json(bundle[at : at + size], max_bytes=MAX_MANIFEST, what="manifest")
    except ValueError as exc:
        raise ModelError("the bundle's manifest is not JSON", id="model.bundle.malformed") from exc
    at += size
    parts: dict[str, bytes] = {}
    for entry in manifest.get("parts", []):
        if at + 8 > len(bundle):
            raise ModelError("the bundle is truncated", id="model.bundle.malformed")
        (n,) = struct.unpack_from(">Q", bundle, at)
        at += 8
        data = bundle[at : at + n]
        at += n
        if len(data) != n or not hmac.compare_digest(
            hashlib.sha256(data).hexdigest(), str(entry.get("sha256", ""))
        ):
            raise ModelError(
                f"bundle part {entry.get('name')!r} does not match its manifest entry",
                id="model.bundle.malformed",
            )
        parts[str(entry["name"])] = data
    if at != len(bundle):
        raise ModelError("the bundle has trailing bytes", id="model.bundle.malformed")
    return manifest, parts
