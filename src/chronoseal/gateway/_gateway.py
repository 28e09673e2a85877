"""A party's trusted data gateway (claim 1): the only way its data leaves its domain.

It acts for a task only when the chain says the task is Approved, names this party as a
data provider, and the party's own review of the spec still passes (same spec hash, same
pinned measurements, policies within its consent). It then checks its sources, charges the
privacy budget, verifies the analysis runtime's attestation *itself* — and that it is the
very runtime recorded on chain — acknowledges it on chain, and streams desensitized,
encrypted batches. Its commitment of what it sent goes on chain beside the runtime's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from chronoseal.attest import Attester
from chronoseal.channel import (
    AttestedChannel,
    GatewayIntake,
    RaTlsIdentity,
    Welcome,
    encode_batch,
)
from chronoseal.errors import (
    ChainRevert,
    ChronosealError,
    DataError,
    LedgerError,
    PeerRefused,
    ReviewRefused,
    StreamIntegrityError,
)
from chronoseal.ledger import (
    ChainComponent,
    Consortium,
    OrgSession,
    TaskState,
    onchain_task,
    usable_pins,
)
from chronoseal.model import verify_release
from chronoseal.privacy import BudgetLedger, Desensitizer, dataset_cost, deployment_id
from chronoseal.sources import ReadOrder, Source, open_source
from chronoseal.spec import Component, Dataset, PartyConfig, TaskSpec, review_task, task_id
from chronoseal.trust import TaskTrust

from ._binding import RuntimeBinding
from ._checks import checked_batches, in_window, read_order, refuse_empty_window
from ._pipeline import prefetch

DEFAULT_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class StreamReport:
    party: str
    rows_sent: int
    bytes_sent: int
    batches: int
    commitment: bytes
    runtime_commitment: bytes
    tee: str = "simulated"
    #: The stream was sent and committed before this gateway restarted: nothing sent now.
    earlier: bool = False


def encoded_batches(
    source: Source,
    dataset: Dataset,
    desensitizer: Desensitizer,
    batch_rows: int,
    spec: TaskSpec | None = None,
    *,
    order: ReadOrder,
    feed: bool = False,
) -> Generator[tuple[int, bytes], None, None]:
    """Desensitized batches as Arrow IPC with their row counts, produced ahead of the sender
    in two stages, each on its own thread (the source's read; desensitizing and encoding),
    so that neither waits for the other nor for the sender; deterministic order and
    boundaries (a restarted gateway reproduces them).
    ``order`` is :func:`read_order`'s survey, made before any channel opens. With the task's
    ``spec``, the raw rows are checked first (:func:`checked_batches`) and only those of the
    training window (or, ``feed``, of the feed after it) are sent."""

    def read() -> Iterator[pa.RecordBatch]:
        if spec is None:
            return source.batches(dataset.columns(), batch_rows=batch_rows, order=order)
        return window_batches(source, dataset, spec, order, batch_rows, feed=feed)

    def produce() -> Iterator[tuple[int, bytes]]:
        for batch in desensitizer.run(lambda: prefetch(read())):
            yield batch.num_rows, encode_batch(batch)

    return prefetch(produce())


def window_batches(
    source: Source,
    dataset: Dataset,
    spec: TaskSpec,
    order: ReadOrder,
    batch_rows: int,
    *,
    feed: bool,
) -> Iterator[pa.RecordBatch]:
    """The raw rows the task may read of ``dataset`` (:func:`checked_batches`), those of the
    training window or, ``feed``, those after it."""
    raw = source.batches(dataset.columns(), batch_rows=batch_rows, order=order)
    checked = checked_batches(raw, dataset, spec, order)
    return in_window(
        checked,
        dataset.time_column,
        spec.task.data_until,
        feed=feed,
        naive_zone=spec.join.naive_timezone,
    )


Progress = Callable[[int, int], None]
"""Called after every batch with (rows so far, payload bytes so far)."""


class Gateway:
    """One party's gateway for one task."""

    def __init__(
        self,
        consortium: Consortium,
        party: PartyConfig,
        spec: TaskSpec,
        *,
        config_dir: Path,
        attester: Attester,
        org_key: LocalAccount,
        state_dir: Path,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.consortium = consortium
        self.party = party
        self.name = party.party.name
        self.spec = spec
        self.task_id = task_id(spec)
        self.config_dir = config_dir
        self.attester = attester
        self.trust = TaskTrust(
            consortium, spec, Component.GATEWAY, attester, io_timeout=party.io_timeout
        )
        self._key = org_key
        self.session: OrgSession = consortium.as_org(self.name, org_key.key)
        self._binding = RuntimeBinding(
            consortium, self.task_id, self.name, self.trust, self.session
        )
        self.state_dir = state_dir
        self.batch_rows = batch_rows

    # ------------------------------------------------------------------ checks

    def dataset(self) -> Dataset:
        datasets = self.spec.datasets_of(self.name)
        if len(datasets) != 1:
            raise DataError(
                f"{self.name} has {len(datasets)} datasets in the task; a gateway streams one",
                id="gateway.dataset.count",
            )
        return datasets[0]

    def check_task(self) -> None:
        """Refuse unless the task is Approved (or Running, for a restarted gateway) and this
        party's review still passes."""
        view = self.consortium.task(self.task_id)
        acting = view.state in (TaskState.APPROVED, TaskState.RUNNING)
        problems = review_task(
            self.party,
            self.spec,
            onchain_task(view),
            usable_pins(self.consortium, view),
            expected_state=view.state.name.capitalize() if acting else "Approved",
        )
        if self.name not in view.participants:
            raise LedgerError(
                f"task 0x{self.task_id.hex()} does not name {self.name}",
                id="ledger.task.not_participant",
            )
        if problems:
            raise ReviewRefused(self.name, [(p.id, p.message) for p in problems])

    def source_url(self, dataset: Dataset) -> str:
        try:
            return self.party.sources[dataset.source]
        except KeyError:
            raise DataError(
                f"dataset {dataset.name!r} names source {dataset.source!r}, which "
                f"{self.name}'s config does not define",
                id="review.source.unknown",
            ) from None

    # ------------------------------------------------------------------ run

    def run(self, runtime: tuple[str, int], progress: Progress | None = None) -> StreamReport:
        """Check, verify the runtime, acknowledge it, and stream; the whole gateway job."""
        self.check_task()
        dataset = self.dataset()
        try:
            source, order = self._open_source(dataset)
            refuse_empty_window(
                source, dataset, self.spec.task.data_until, self.spec.join.naive_timezone
            )
            self._charge_budget(dataset)
        except DataError as exc:
            self._give_up(exc)
            raise
        with self._binding.channel(runtime) as (channel, record, identity):
            self._binding.acknowledge(record)
            self._wait_running()
            intake, welcome, desensitizer = self._hello(channel, identity, dataset)
            try:
                rows, sent_bytes = self._stream(
                    intake, welcome, source, order, dataset, desensitizer, progress
                )
            except DataError as exc:
                self._give_up(exc)
                raise
            except StreamIntegrityError as exc:
                # Our source changed under a resumed stream: only a new task can fix that. A
                # transport failure, by contrast, leaves the task to a restart.
                if exc.id == "channel.intake.resume_mismatch":
                    self._give_up(exc)
                raise
            runtime_root = intake.finish()
            root = intake.commitment.root()
        self._post_commitment(root)
        return StreamReport(
            party=self.name,
            rows_sent=rows,
            bytes_sent=sent_bytes,
            batches=len(intake.commitment.leaves),
            commitment=root,
            runtime_commitment=runtime_root,
            tee=str(self.attester.tee),
        )

    def _hello(
        self, channel: AttestedChannel, identity: RaTlsIdentity, dataset: Dataset
    ) -> tuple[GatewayIntake, Welcome, Desensitizer]:
        """Speak for the party on an attested channel; the runtime's welcome carries the task
        key the desensitizer derives pseudonyms and time shifts from."""
        intake = GatewayIntake(
            channel,
            task_id=self.task_id,
            party=self.name,
            own_fingerprint=identity.fingerprint,
            sign=self._sign,
            suite=self.spec.task.crypto,
        )
        welcome = intake.hello()
        desensitizer = Desensitizer(dataset, task_key=welcome.task_key, task_id=self.task_id)
        return intake, welcome, desensitizer

    def _open_source(self, dataset: Dataset) -> tuple[Source, ReadOrder]:
        """Our source, its columns checked against the dataset and its time column surveyed
        (a row without a time is refused here, before any channel opens or any chain
        action), with the order it is read in."""
        source = open_source(self.source_url(dataset), base_dir=self.config_dir)
        source.check(dataset)
        return source, read_order(source, dataset)

    def _stream(
        self,
        intake: GatewayIntake,
        welcome: Welcome,
        source: Source,
        order: ReadOrder,
        dataset: Dataset,
        desensitizer: Desensitizer,
        progress: Progress | None,
    ) -> tuple[int, int]:
        """Re-derive the batches the runtime already holds (checked against its leaves),
        then send the rest; (rows in the stream, payload bytes sent now)."""
        if welcome.held and dataset_cost(dataset).epsilon > 0:
            raise DataError(
                f"the runtime already holds {len(welcome.held)} batches of this stream, "
                "but the policy adds fresh noise, so they cannot be reproduced to resume; "
                "abort the task and propose it again",
                id="gateway.resume.nondeterministic",
            )
        payloads = encoded_batches(
            source, dataset, desensitizer, self.batch_rows, self.spec, order=order
        )
        # closed however the stream ends (a cut, a refusal), so the read-ahead thread and
        # the source's files are released now, not whenever the generator is collected
        with closing(payloads):
            rows = 0
            for index, salt in welcome.held:
                batch_rows, payload = next(payloads, (0, b""))
                intake.replay(index, salt, payload)
                rows += batch_rows
            sent_bytes = 0
            for batch_rows, payload in payloads:
                intake.send(payload)
                rows += batch_rows
                sent_bytes += len(payload)
                if progress is not None:
                    progress(rows, sent_bytes)
        return rows, sent_bytes

    def committed_earlier(self) -> StreamReport:
        """For a gateway restarted after the task was trained: the stream it sent before,
        as the chain records it (both commitments, matched), so it only fetches its release."""
        ours, theirs = self.consortium.commitments(self.task_id, self.name)
        if ours is None or theirs is None or not hmac.compare_digest(ours, theirs):
            raise LedgerError(
                f"task 0x{self.task_id.hex()} is past streaming, but {self.name}'s data "
                "commitment is not matched on chain",
                id="gateway.task.not_committed",
            )
        return StreamReport(
            party=self.name,
            rows_sent=0,
            bytes_sent=0,
            batches=0,
            commitment=ours,
            runtime_commitment=theirs,
            tee=str(self.attester.tee),
            earlier=True,
        )

    def send_feed(self, prediction: tuple[str, int]) -> int:
        """Feed the prediction runtime our rows after the training window (what a forecast
        needs of us: the known-in-advance covariates), under the task's policy, framing and
        commitment; only to the runtime the chain binds as the task's prediction runtime.
        Returns the rows sent."""
        dataset = self.dataset()
        source, order = self._open_source(dataset)
        self._charge_feed(dataset)
        channel, identity = self.trust.connect(prediction, Component.PREDICTION)
        with channel:
            view = self.consortium.task(self.task_id)
            peer = channel.peer
            if not view.binds(ChainComponent.PREDICTION, peer.chain_address):
                raise PeerRefused(
                    "this attested runtime is not the prediction runtime the chain binds",
                    id="gateway.feed.not_on_chain",
                )
            intake, _, desensitizer = self._hello(channel, identity, dataset)
            rows = 0
            for batch_rows, payload in encoded_batches(
                source, dataset, desensitizer, self.batch_rows, self.spec, order=order, feed=True
            ):
                intake.send(payload)
                rows += batch_rows
            intake.finish()
        return rows

    def rows_after_window(self, periods: int) -> pa.Table:
        """Our raw rows of the first ``periods`` distinct times after the training window
        (checked as a training stream's are): the newest observations a forecast request
        can carry, desensitized by the forecast client. Empty when the task has no
        ``data_until`` or the source holds nothing after it."""
        dataset = self.dataset()
        source, order = self._open_source(dataset)
        batches = list(
            window_batches(source, dataset, self.spec, order, self.batch_rows, feed=True)
        )
        if not batches:
            return source.schema().empty_table().select(dataset.columns())
        table = pa.Table.from_batches(batches)
        times = pc.unique(table.column(dataset.time_column)).sort()[:periods]
        return table.filter(pc.less_equal(table.column(dataset.time_column), times[-1]))

    def fetch_release(self, runtime: tuple[str, int]) -> dict[str, Any]:
        """What the task releases to this party, checked against the chain: fetched from the
        bound runtime over the attested channel once the task is Trained."""
        view = self.consortium.task(self.task_id)
        if view.model_commitment is None or view.metrics_digest is None:
            raise LedgerError(
                f"task 0x{self.task_id.hex()} is {view.state.name}: no model is committed",
                id="gateway.release.not_trained",
            )
        with self._binding.bound_channel(runtime) as (channel, identity):
            intake = GatewayIntake(
                channel,
                task_id=self.task_id,
                party=self.name,
                own_fingerprint=identity.fingerprint,
                sign=self._sign,
                suite=self.spec.task.crypto,
            )
            payload = intake.fetch_release()
        return verify_release(
            payload,
            party=self.name,
            task_id=self.task_id,
            metrics_digest=view.metrics_digest,
            model_commitment=view.model_commitment,
        )

    def _give_up(self, exc: ChronosealError) -> None:
        """Our own data cannot be sent as the task says: abort the task on chain, so every
        other component learns it now instead of waiting for a stream that will not end.
        The runtime never uses a stream that did not end, so nothing of it is used."""
        try:
            if self.consortium.task_state(self.task_id) in (TaskState.APPROVED, TaskState.RUNNING):
                self.session.abort_task(self.task_id)
        except LedgerError as chain:
            exc.add_note(f"aborting the task on chain failed too: {chain}")

    def _post_commitment(self, root: bytes) -> None:
        """Our commitment on chain; if another party's mismatch disputed the task meanwhile,
        say so rather than surface the contract's state refusal. A restarted gateway whose
        commitment is already there posts nothing."""
        earlier, _ = self.consortium.commitments(self.task_id, self.name)
        if earlier is not None and hmac.compare_digest(earlier, root):
            return
        try:
            self.session.post_gateway_commitment(self.task_id, root)
        except ChainRevert as exc:
            if self.consortium.task_state(self.task_id) is TaskState.DISPUTED:
                raise LedgerError(
                    f"task 0x{self.task_id.hex()} was disputed (a party's commitment did not "
                    f"match) before {self.name}'s commitment could be posted; nothing is trained",
                    id="gateway.task.disputed",
                ) from exc
            raise

    def planned_rows(self) -> int | None:
        """Rows the party's source holds for this task (before any suppression), if cheap."""
        dataset = self.dataset()
        return open_source(self.source_url(dataset), base_dir=self.config_dir).row_count()

    def _charge_budget(self, dataset: Dataset) -> None:
        """Charge the task's privacy loss before a single row leaves (idempotent per task)."""
        cost = dataset_cost(dataset)
        ledger = BudgetLedger(self.state_dir / "privacy-budget.json", self.party.budgets)
        deployment = deployment_id(self.consortium.chain.chain_id, self.consortium.address)
        ledger.charge(dataset.source, self.task_id, cost.epsilon, cost.delta, deployment=deployment)

    def _charge_feed(self, dataset: Dataset) -> None:
        """A feed under a noisy policy draws fresh noise. The first feed releases rows the
        training stream never did (after the window), so the task's one charge covers it
        (parallel composition over disjoint rows); every later feed of the task releases
        those rows again and is charged as a release of its own before anything is sent.
        An attempt is counted even if it then fails: the count errs towards spending."""
        cost = dataset_cost(dataset)
        if cost.epsilon == 0 and cost.delta == 0:
            return
        self._charge_budget(dataset)
        counter = self.state_dir / f"feeds-{self.task_id.hex()}.json"
        try:
            sent = int(json.loads(counter.read_text())["sent"]) if counter.exists() else 0
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"{counter} is unusable; restore it rather than delete it, since an empty one "
                "would forget the feeds already charged",
                id="data.budget.file_invalid",
            ) from exc
        if sent:
            release = hashlib.sha256(b"chronoseal.feed.v1" + self.task_id + sent.to_bytes(8, "big"))
            ledger = BudgetLedger(self.state_dir / "privacy-budget.json", self.party.budgets)
            deployment = deployment_id(self.consortium.chain.chain_id, self.consortium.address)
            ledger.charge(
                dataset.source, release.digest(), cost.epsilon, cost.delta, deployment=deployment
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        partial = counter.with_suffix(".tmp")
        partial.write_text(json.dumps({"sent": sent + 1}))
        partial.replace(counter)

    def _wait_running(self, timeout: float = 120.0, poll: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.consortium.task_state(self.task_id)
            if state is TaskState.RUNNING:
                return
            if state is not TaskState.APPROVED:
                raise LedgerError(
                    f"task left Approved for {state.name} while waiting to run",
                    id="gateway.task.not_running",
                )
            time.sleep(poll)
        raise LedgerError(
            "not every gateway acknowledged the runtime in time", id="gateway.task.not_running"
        )

    def _sign(self, digest: bytes) -> bytes:
        signed = Account.sign_message(encode_defunct(primitive=digest), self._key.key)
        return bytes(signed.signature)
