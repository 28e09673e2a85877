"""Feeds (gateway → prediction runtime): the future-known covariates a model needs to forecast.

Each provider of future-known covariates sends its rows after the training window, under the
same policy, framing and commitment as training; every feed taken is a new *epoch* of its
dataset, sealed (when the runtime keeps state) and audited with its commitment root, and a
forecast names the epochs it used. A feed that does not cover the periods asked for is a
refusal, never a silent gap.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable

import pandas as pd
import pyarrow as pa

from chronoseal.channel import AttestedChannel, PartyIntake, serve_intake
from chronoseal.errors import LedgerError, PeerRefused
from chronoseal.model import (
    DS,
    ID,
    Grid,
    LoadedModel,
    LocalTimeError,
    TimeRangeError,
    ZoneTimeError,
    as_float,
    combine_repeated,
    to_utc,
)
from chronoseal.spec import Dataset, TaskSpec

from ._audit import AuditLeaf, AuditLog
from ._sealed import SealedStateError, SealedStore
from ._wire import PartyVerifier

log = logging.getLogger("chronoseal.prediction")

#: The audit outcome of a feed epoch taken.
FEED_RECEIVED = "feed.received"


class Feeds:
    """The newest frame and epoch of each feed dataset, as the gateways sent them."""

    def __init__(
        self,
        spec: TaskSpec,
        task_id: bytes,
        audit: AuditLog,
        *,
        verify_party: PartyVerifier,
        clock: Callable[[], float],
        store: SealedStore | None,
    ) -> None:
        self.spec = spec
        self.task_id = task_id
        self.audit = audit
        self._verify_party = verify_party
        self._clock = clock
        self._store = store
        self._lock = threading.Lock()
        self.frames: dict[str, pd.DataFrame] = {}
        self.epochs: dict[str, int] = {}

    def snapshot(self) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
        """The frames and epochs held now (a new epoch may replace them at any moment)."""
        with self._lock:
            return dict(self.frames), dict(self.epochs)

    def wait(self, parties: set[str], timeout: float) -> None:
        """Until a feed epoch from each of ``parties`` is held."""
        names = {ds.name for ds in self.spec.feed_datasets() if ds.party in parties}
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if names <= set(self.frames):
                    return
            if time.monotonic() > deadline:
                raise LedgerError(
                    f"no feed from {', '.join(sorted(names - set(self.frames)))} arrived",
                    id="prediction.feed.missing",
                )
            time.sleep(0.05)

    # ------------------------------------------------------------------ intake

    def serve(self, channel: AttestedChannel, task_key: bytes) -> None:
        """Take one feed epoch from a gateway: its rows desensitized under ``task_key`` as
        the training rows were, read as the join read them, sealed, then audited."""
        names = {ds.party: ds for ds in self.spec.feed_datasets()}

        def intake_for(party: str) -> PartyIntake:
            ds = names.get(party)
            if ds is None:
                raise PeerRefused(
                    f"{party!r} provides no feed this model needs", id="prediction.feed.not_needed"
                )
            if any(ds.released(c) and c in self.spec.join.on for c in ds.entity_columns):
                raise PeerRefused(
                    f"the {ds.name} feed is keyed by entity as well as time; such feeds are not "
                    "served yet, so forecasts needing it are refused rather than mis-aligned",
                    id="prediction.feed.keyed",
                )
            return PartyIntake(
                self.task_id, party, ds.released_columns(), suite=self.spec.task.crypto
            )

        intake = serve_intake(
            channel,
            task_id=self.task_id,
            own_fingerprint=channel.local_fingerprint,
            task_key=task_key,
            intake_for=intake_for,
            verify_party=self._verify_party,
            suite=self.spec.task.crypto,
        )
        if intake is None:
            return
        table = intake.table()
        ds = names[intake.party]
        root = intake.commitment.root()
        try:
            frame = feed_frame(self.spec, ds, table)
        except PeerRefused as exc:  # the epoch is not taken: audited, and said in the log
            self._leaf(intake.party, root, exc.id, {})
            raise
        with self._lock:
            epoch = self.epochs.get(ds.name, -1) + 1
            self.epochs[ds.name] = epoch
            self.frames[ds.name] = frame
        if self._store is not None:
            self._store.put(f"feed-{ds.name}", epoch.to_bytes(8, "big") + frame_ipc(frame))
        self._leaf(intake.party, root, FEED_RECEIVED, {ds.name: epoch})
        log.info("feed %s epoch %d: %d rows", ds.name, epoch, len(frame))

    def _leaf(self, party: str, root: bytes, outcome: str, epochs: dict[str, int]) -> None:
        self.audit.append(
            AuditLeaf(
                task_id=self.task_id,
                requester=party,
                request_digest=root,
                outcome=outcome,
                response_digest=None,
                feed_epochs=epochs,
                at_us=int(self._clock() * 1e6),
            )
        )

    # ------------------------------------------------------------------ restart

    def restore(self, store: SealedStore) -> int:
        """The sealed feeds back (a restarted runtime); how many there were."""
        feeds = 0
        for ds in self.spec.feed_datasets():
            sealed = store.get(f"feed-{ds.name}")
            if sealed is not None:
                self.epochs[ds.name] = int.from_bytes(sealed[:8], "big")
                self.frames[ds.name] = pa.ipc.open_stream(sealed[8:]).read_all().to_pandas()
                feeds += 1
        return feeds

    def refuse_rolled_back(self, journal: list[AuditLeaf]) -> None:
        """Every feed epoch is an audit leaf, journaled before it is posted and checked
        against the chain's roots on restore: a sealed feed older than the newest epoch the
        journal holds was copied back by the host (a crash between sealing a feed and
        journaling it leaves the feed one epoch *ahead*, which is fine)."""
        newest: dict[str, int] = {}
        for leaf in journal:
            if leaf.outcome == FEED_RECEIVED:
                for name, epoch in leaf.feed_epochs.items():
                    newest[name] = max(newest.get(name, -1), int(epoch))
        for name, epoch in sorted(newest.items()):
            sealed = self.epochs.get(name)
            if sealed is None or sealed < epoch:
                raise SealedStateError(
                    f"the sealed feed {name!r} is "
                    f"{'missing' if sealed is None else f'at epoch {sealed}'}, but the audit "
                    f"log (anchored on chain) records epoch {epoch}: older sealed state was put "
                    "back; restore the newest state directory",
                    id="prediction.sealed.rolled_back",
                )

    # ------------------------------------------------------------------ forecasting

    def future(self, model: LoadedModel, h: int) -> tuple[pd.DataFrame | None, dict[str, int]]:
        """The future-known covariates for the next ``h`` periods of every series, from the
        feeds, and the epochs they came from; a feed that does not cover them is a refusal,
        never a silent gap."""
        wanted = list(model.recipe.future_known)
        if not wanted:
            return None, {}
        last = model.history.groupby(ID, sort=True)[DS].max()
        grid = pd.tseries.frequencies.to_offset(model.recipe.freq)
        future = pd.DataFrame(
            [
                (uid, t)
                for uid, end in last.items()
                for t in pd.date_range(end, periods=h + 1, freq=grid)[1:]
            ],
            columns=[ID, DS],
        )
        epochs: dict[str, int] = {}
        feeds, epochs_now = self.snapshot()
        for ds in self.spec.feed_datasets():
            columns = [f"{ds.name}__{c}" for c in ds.value_columns if f"{ds.name}__{c}" in wanted]
            if not columns:
                continue
            feed = feeds.get(ds.name)
            if feed is None:
                raise PeerRefused(
                    f"no feed from {ds.party} ({ds.name}) has arrived",
                    id="prediction.feed.missing",
                )
            merged = future[[DS]].drop_duplicates().merge(feed, on=DS, how="left")
            gaps = int(merged[columns].isna().any(axis=1).sum())
            if gaps:
                raise PeerRefused(
                    f"the {ds.name} feed does not cover {gaps} of the next {h} periods "
                    "(stale or incomplete); nothing is forecast from missing inputs",
                    id="prediction.feed.stale",
                )
            future = future.merge(feed[[DS, *columns]], on=DS, how="left")
            epochs[ds.name] = epochs_now[ds.name]
        missing = [c for c in wanted if c not in future.columns]
        if missing:
            raise PeerRefused(f"no feed carries {', '.join(missing)}", id="prediction.feed.missing")
        return future, epochs


def feed_frame(spec: TaskSpec, ds: Dataset, table: pa.Table) -> pd.DataFrame:
    """A feed as the model's covariate columns by time (``dataset__column``), its times
    normalised as the join normalised the training rows (UTC, ``join.naive_timezone``, the
    model's grid under ``join.off_grid``) and repeated times combined by ``join.duplicates``
    — a feed read any other way would line covariates up with the wrong periods. A feed
    with no rows is an epoch too (forecasts that need it are then refused as stale)."""
    columns = [f"{ds.name}__{c}" for c in ds.value_columns if ds.released(c)]
    if ds.time_column not in table.column_names or not table.num_rows:
        return pd.DataFrame({DS: pd.Series([], dtype="datetime64[ns]")}).assign(
            **{c: pd.Series([], dtype="float64") for c in columns}
        )
    column = table.column(ds.time_column)
    grid = Grid.parse(spec.target_dataset().effective_frequency())
    try:
        times = to_utc(column, spec.join.naive_timezone, grid.alias)
    except (TimeRangeError, LocalTimeError, ZoneTimeError) as exc:
        raise PeerRefused(f"the {ds.name} feed: {exc.message}", id="prediction.feed.time") from None
    if int(times.isna().sum()):
        raise PeerRefused(f"the {ds.name} feed has rows without a time", id="prediction.feed.time")
    snapped = grid.snap(times)
    if spec.join.off_grid == "refuse" and bool((snapped != times).any()):
        raise PeerRefused(
            f"the {ds.name} feed has times off the model's {grid.alias!r} grid",
            id="prediction.feed.off_grid",
        )
    frame = pd.DataFrame({DS: snapped.to_numpy()})
    for c in ds.value_columns:
        if ds.released(c) and c in table.column_names:
            frame[f"{ds.name}__{c}"] = as_float(pd.Series(table.column(c).to_pandas())).to_numpy()
    repeated = int(frame.duplicated(DS).sum())
    if repeated:
        rule = spec.join.duplicates
        if rule == "refuse":
            raise PeerRefused(
                f"the {ds.name} feed repeats {repeated} times (join.duplicates = 'refuse')",
                id="prediction.feed.duplicate_keys",
            )
        frame = combine_repeated(frame, [DS], rule)
    return frame.sort_values(DS).reset_index(drop=True)


def frame_ipc(frame: pd.DataFrame) -> bytes:
    """A frame as one Arrow IPC stream (how feeds are sealed and forecasts travel)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()
