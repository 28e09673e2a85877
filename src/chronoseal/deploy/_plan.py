"""Which components a task needs, where each runs and what each talks to.

Input is plain data (the task spec and each party's config with its file text), so this
package never loads a scenario itself: the CLI does and hands the pieces over.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from chronoseal.errors import ChronosealError, DeployError
from chronoseal.sources import parse_source_url
from chronoseal.spec import PartyConfig, Role, TaskSpec

from . import _layout as L
from ._members import ValidatorsInput
from ._tee import NO_TEE, Placement, placement

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_SECRET_PARAMS = frozenset({"password", "sslpassword"})
_POSTGRES_DEFAULT_PORT = 5432


class Kind(StrEnum):
    """What a component is; also its ``app.kubernetes.io/component`` label."""

    GATEWAY = "gateway"
    ANALYSIS = "analysis"
    PREDICTION = "prediction"
    PARTY_AGENT = "party-agent"
    ANALYSIS_WORKER = "analysis-worker"
    VALIDATOR = "validator"


#: Components that keep state across restarts: a StatefulSet with a volume each (a
#: validator's is its chain data).
STATEFUL_KINDS = frozenset({Kind.GATEWAY, Kind.ANALYSIS, Kind.PARTY_AGENT, Kind.VALIDATOR})
#: Components that send and read transactions through a chain node.
CHAIN_USERS = frozenset({Kind.GATEWAY, Kind.ANALYSIS, Kind.PREDICTION, Kind.PARTY_AGENT})
#: Components with no state but a stable name per replica (a StatefulSet without volume):
#: the analysis runtime reaches each worker at ``<pod>.<service>.<namespace>.svc``.
STABLE_NAME_KINDS = frozenset({Kind.ANALYSIS_WORKER})


@dataclass(frozen=True)
class PartyInput:
    """One party's config as parsed and as written (the text is what its pods read)."""

    name: str
    config: PartyConfig
    config_text: str


@dataclass(frozen=True)
class DeployInput:
    """Everything rendering needs: the task spec (parsed and as written) and party configs."""

    spec: TaskSpec
    spec_text: str
    parties: Mapping[str, PartyInput]
    #: ``[compute] workers``: attested Dask worker pods of the analysis runtime (0: none).
    workers: int = 0
    #: The consortium's founding members (``[consortium] members``), in the scenario's order.
    members: tuple[str, ...] = ()
    #: ``--validators FILE``: render each member's validator node and point every component
    #: at its own member's node; None: the chain is external (``--chain-url``).
    validators: ValidatorsInput | None = None


@dataclass(frozen=True)
class Component:
    """One process to deploy. ``listens`` maps port names to ports; ``tsdb_ports`` are the
    database ports (PostgreSQL, InfluxDB, Prometheus) a gateway reads its sources from."""

    name: str
    kind: Kind
    namespace: str
    placement: Placement
    party: str | None = None
    recipient: bool = False
    listens: Mapping[str, int] = field(default_factory=dict)
    tsdb_ports: tuple[int, ...] = ()
    file_sources: bool = False
    #: Environment variables the gateway's sources read credentials from (``auth=env:NAME``
    #: of InfluxDB and Prometheus sources), each set from the same-named key of its Secret.
    source_secret_env: tuple[str, ...] = ()
    #: Whether it reads PostgreSQL (its password then comes as ``PGPASSWORD``).
    postgres_sources: bool = False
    #: Pods of it: the analysis workers' count (``[compute] workers``), else one.
    replicas: int = 1
    #: A validator's node id (the other validators dial it by it) and signer address.
    node_id: str | None = None
    signer: str | None = None

    @property
    def stateful(self) -> bool:
        return self.kind in STATEFUL_KINDS

    @property
    def stable_names(self) -> bool:
        """A StatefulSet (stable pod DNS names), with a state volume only if ``stateful``."""
        return self.stateful or self.kind in STABLE_NAME_KINDS

    @property
    def chain_key(self) -> bool:
        """Whether it holds a chain key (a keystore Secret): a worker's evidence binds its
        runtime's key instead, and the runtime posts the worker's attestation; a validator
        seals with its signer key (a Secret of its own, ``validator_secret``)."""
        return self.kind in CHAIN_USERS


@dataclass(frozen=True)
class Plan:
    task: str
    runtime_namespace: str
    components: tuple[Component, ...]
    #: The validators' names in the members' order (who dials whom, the runtimes' order).
    validator_order: tuple[str, ...] = ()

    def of_kind(self, kind: Kind) -> list[Component]:
        return [c for c in self.components if c.kind == kind]

    def one(self, kind: Kind) -> Component:
        return self.of_kind(kind)[0]

    @property
    def namespaces(self) -> list[str]:
        return sorted({c.namespace for c in self.components})


def dns_label(text: str, what: str) -> str:
    """``text`` as a Kubernetes name (RFC 1123 label): ``_`` becomes ``-``; refused if still
    not one."""
    label = text.replace("_", "-")
    if not _DNS_LABEL.fullmatch(label):
        raise DeployError(
            f"{what} {text!r} cannot be a Kubernetes name (as {label!r}): at most 63 lower-case "
            "letters, digits and '-', starting and ending with a letter or digit",
            id="deploy.name.invalid",
            context={"name": text},
        )
    return label


def plan(inp: DeployInput, *, namespace_prefix: str = "chronoseal") -> Plan:
    """The components of ``inp``'s task; refuses an unsupported TEE pin, a party without a
    config, a secret in a party config and file sources outside the data directory."""
    spec = inp.spec
    for what, value in [
        ("task name", spec.task.name),
        *(("party", p.org) for p in spec.participants),
    ]:
        if not _LABEL_VALUE.fullmatch(value):
            raise DeployError(
                f"{what} {value!r} cannot be a Kubernetes label value: at most 63 letters, "
                "digits, '-', '_' and '.', starting and ending with a letter or digit",
                id="deploy.name.invalid",
            )
    runtime_ns = dns_label(f"{namespace_prefix}-runtime", "namespace")
    pins = spec.measurements
    analysis_listens = {"intake": L.ANALYSIS_INTAKE_PORT}
    components = []
    if inp.workers:
        components.append(_workers(inp, runtime_ns))
        analysis_listens["dask"] = L.DASK_SCHEDULER_PORT
    components += [
        Component(
            name="analysis",
            kind=Kind.ANALYSIS,
            namespace=runtime_ns,
            placement=placement(pins.analysis.tee, "analysis"),
            listens=analysis_listens,
        ),
        Component(
            name="prediction",
            kind=Kind.PREDICTION,
            namespace=runtime_ns,
            placement=placement(pins.prediction.tee, "prediction"),
            listens={
                "handover": L.PREDICTION_HANDOVER_PORT,
                "feeds": L.PREDICTION_FEEDS_PORT,
                "forecasts": L.PREDICTION_FORECASTS_PORT,
            },
        ),
    ]
    gateway_placement = placement(pins.gateway.tee, "gateway")
    names: dict[str, str] = {}
    for participant in spec.participants:
        org = participant.org
        label = dns_label(org, "party")
        if label in names:
            raise DeployError(
                f"parties {names[label]!r} and {org!r} would share the Kubernetes name {label!r}",
                id="deploy.name.collision",
            )
        names[label] = org
        party = inp.parties.get(org)
        if party is None:
            raise DeployError(
                f"participant {org!r} has no party config: the scenario's [parties] must name "
                "one for every participant",
                id="deploy.party.missing",
            )
        namespace = dns_label(f"{namespace_prefix}-{label}", "namespace")
        recipient = org in spec.release.forecasts.to
        if Role.DATA_PROVIDER in participant.roles:
            tsdb_ports, file_sources, secret_env, postgres = _sources(party)
            components.append(
                Component(
                    name=f"gateway-{label}",
                    kind=Kind.GATEWAY,
                    namespace=namespace,
                    placement=gateway_placement,
                    party=org,
                    recipient=recipient,
                    tsdb_ports=tsdb_ports,
                    file_sources=file_sources,
                    source_secret_env=secret_env,
                    postgres_sources=postgres,
                )
            )
        components.append(
            Component(
                name=f"party-agent-{label}",
                kind=Kind.PARTY_AGENT,
                namespace=namespace,
                placement=placement(NO_TEE, "party agent"),
                party=org,
                recipient=recipient,
            )
        )
    validators: list[Component] = []
    if inp.validators is not None:
        validators = _validators(inp, inp.validators, namespace_prefix, names)
    ordered = tuple(sorted([*components, *validators], key=lambda c: (c.namespace, c.name)))
    return Plan(
        task=spec.task.name,
        runtime_namespace=runtime_ns,
        components=ordered,
        validator_order=tuple(v.name for v in validators),
    )


def _validators(
    inp: DeployInput, given: ValidatorsInput, namespace_prefix: str, names: dict[str, str]
) -> list[Component]:
    """One validator per founding member, in its namespace; refuses a member (or a task
    participant) with no validator, and a validator of no member."""
    members = list(inp.members or given.members)
    for org in [*members, *(p.org for p in inp.spec.participants)]:
        if org not in given.members:
            raise DeployError(
                f"founding member {org!r} has no validator in the validators file: add "
                f"[members.{org}] with its signer address and node id (chronoseal chain "
                "validator-key prints both); every member seals and every party uses its own "
                "member's node",
                id="deploy.validators.member_missing",
                context={"member": org},
            )
    strangers = sorted(set(given.members) - set(members))
    if strangers:
        raise DeployError(
            f"the validators file names {', '.join(map(repr, strangers))}, not founding members "
            f"of this consortium ({', '.join(members)}): a validator signs for a member",
            id="deploy.validators.invalid",
        )
    validators = []
    for org in members:
        label = dns_label(org, "member")
        if names.setdefault(label, org) != org:
            raise DeployError(
                f"members {names[label]!r} and {org!r} would share the Kubernetes name {label!r}",
                id="deploy.name.collision",
            )
        if not _LABEL_VALUE.fullmatch(org):
            raise DeployError(
                f"member {org!r} cannot be a Kubernetes label value", id="deploy.name.invalid"
            )
        entry = given.members[org]
        validators.append(
            Component(
                name=f"validator-{label}",
                kind=Kind.VALIDATOR,
                namespace=dns_label(f"{namespace_prefix}-{label}", "namespace"),
                placement=placement(NO_TEE, "validator"),
                party=org,
                listens={"p2p": L.VALIDATOR_P2P_PORT, "rpc": L.VALIDATOR_RPC_PORT},
                node_id=entry.node_id,
                signer=entry.signer,
            )
        )
    return validators


def _workers(inp: DeployInput, namespace: str) -> Component:
    """The analysis runtime's worker pods, in the TEE the task pins for ``analysis_worker``;
    refused without that pin (the parties approved no worker code) and on SGX (a worker has
    no Gramine manifest: pin a confidential-VM TEE for it)."""
    pin = inp.spec.measurements.analysis_worker
    if pin is None:
        raise DeployError(
            "the scenario asks for workers but the task pins no measurements.analysis_worker: "
            "the parties approved no worker code; add the pin or render without [compute]",
            id="config.scenario.no_worker_pin",
        )
    where = placement(pin.tee, "analysis_worker")
    if where.sgx:
        raise DeployError(
            "the task pins analysis_worker to tee = 'sgx', which has no Gramine manifest: pin a "
            "confidential-VM TEE (tdx, sev-snp, csv, cca) or simulated for analysis_worker",
            id="deploy.tee.unsupported",
            context={"component": "analysis_worker", "tee": pin.tee},
        )
    return Component(
        name="analysis-worker",
        kind=Kind.ANALYSIS_WORKER,
        namespace=namespace,
        placement=where,
        listens={"admission": L.WORKER_ADMISSION_PORT, "dask": L.WORKER_DASK_PORT},
        replicas=inp.workers,
    )


def _sources(party: PartyInput) -> tuple[tuple[int, ...], bool, tuple[str, ...], bool]:
    """The database ports the party's gateway reads from, whether it reads files, and the
    environment variables its time-series sources take credentials from; refuses a password
    in a source URL (its config goes into a ConfigMap, which is not secret), an
    ``auth=file:`` credential (the pod mounts no such file) and a file outside the data
    directory the gateway's pod mounts. Last, whether any source is PostgreSQL."""
    ports: set[int] = set()
    files = False
    secret_env: set[str] = set()
    postgres = False
    for name, url in sorted(party.config.sources.items()):
        try:
            source = parse_source_url(url, base_dir=L.PARTY_DIR)
        except ChronosealError as exc:
            raise DeployError(
                f"party {party.name!r} source {name!r}: {exc.message}", id=exc.id
            ) from None
        if source.kind == "postgresql":
            if source.password is not None or any(k in _SECRET_PARAMS for k, _ in source.params):
                raise DeployError(
                    f"party {party.name!r} source {name!r} carries a password in its URL; its "
                    "config is rendered into a ConfigMap, which is not secret. Remove the "
                    f"password: the gateway reads it from PGPASSWORD, set from the Secret "
                    f"gateway-{dns_label(party.name, 'party')}-tsdb (key 'password')",
                    id="deploy.secret.in_config",
                    context={"party": party.name, "source": name},
                )
            ports.add(source.port or _POSTGRES_DEFAULT_PORT)
            postgres = True
            continue
        if source.kind in ("influxdb", "prometheus"):
            auth = source.param("auth")
            if auth is not None and auth.startswith("file:"):
                raise DeployError(
                    f"party {party.name!r} source {name!r} reads its credentials from a file "
                    "the gateway's pod does not mount; write auth=env:NAME instead: the "
                    f"gateway then reads NAME from the Secret "
                    f"gateway-{dns_label(party.name, 'party')}-tsdb (key NAME)",
                    id="deploy.source.auth_file",
                    context={"party": party.name, "source": name},
                )
            if auth is not None:
                secret_env.add(auth.removeprefix("env:"))
            if source.port is not None:
                ports.add(source.port)
            continue
        files = True
        path = posixpath.normpath(str(source.path))
        if posixpath.commonpath([path, L.DATA_DIR]) != L.DATA_DIR:
            raise DeployError(
                f"party {party.name!r} source {name!r} reads {path}, outside {L.DATA_DIR}, the "
                f"directory its gateway mounts its data at; the config is read from "
                f"{L.PARTY_DIR}/{L.PARTY_FILE}, so write '../data/FILE' or an absolute path "
                f"under {L.DATA_DIR}",
                id="deploy.party.data_path",
                context={"party": party.name, "source": name},
            )
    return tuple(sorted(ports)), files, tuple(sorted(secret_env)), postgres
