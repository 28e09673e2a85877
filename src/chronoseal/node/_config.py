"""A scenario's file: who is in the consortium, which task they run and each party's own
config, read and checked; :class:`~chronoseal.node.Scenario` adds running it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from chronoseal.errors import ConfigError
from chronoseal.spec import (
    PartyConfig,
    TaskSpec,
    load_party_config,
    load_spec,
    read_config,
)

#: The most Dask workers one runtime host starts for a scenario (``[compute] workers``).
MAX_WORKERS = 64

#: How far a scenario runs: approved, running (data streamed), trained, serving.
Stage = Literal["approved", "running", "trained", "serving"]


class _Strict(BaseModel):
    # strict: "14", 14.0 or true is not a horizon; "yes" is not a boolean
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Consortium(_Strict):
    members: list[str] = Field(min_length=1)
    simulated_tee_allowed: bool = False


class _Task(_Strict):
    spec: str
    proposer: str
    relayed_approvals: list[str] = Field(default_factory=list)


class _Compute(_Strict):
    #: Attested Dask worker processes the analysis runtime starts (0: none, it fits alone).
    workers: int = Field(0, ge=0, le=MAX_WORKERS)


class _ScenarioFile(_Strict):
    consortium: _Consortium
    task: _Task
    parties: dict[str, str]
    compute: _Compute = _Compute(workers=0)


@dataclass(frozen=True)
class ScenarioConfig:
    root: Path
    members: list[str]
    simulated_tee_allowed: bool
    spec_path: Path
    spec: TaskSpec
    proposer: str
    relayed_approvals: list[str]
    parties: dict[str, PartyConfig]
    party_dirs: dict[str, Path]
    #: each party's config file, as the scenario names it (``chronoseal deploy`` ships its text)
    party_paths: dict[str, Path]
    #: ``[compute] workers``: attested Dask workers of the analysis runtime (0: none)
    workers: int = 0

    def with_workers(self, workers: int) -> Self:
        """This scenario with ``workers`` attested Dask workers for its analysis runtime."""
        if not 0 <= workers <= MAX_WORKERS:
            raise ConfigError(
                f"workers must be between 0 and {MAX_WORKERS}, not {workers}",
                id="config.scenario.invalid",
            )
        if workers and self.spec.measurements.analysis_worker is None:
            raise ConfigError(
                f"{self.spec_path} pins no measurements.analysis_worker: the parties have not "
                "approved any worker code, so the analysis cannot run on workers (add the pin "
                "to the task, or run without workers)",
                id="config.scenario.no_worker_pin",
            )
        return replace(self, workers=workers)


C = TypeVar("C", bound=ScenarioConfig)


def bundled_scenario() -> Path:
    """The Chicago example: shipped in the wheel, or found beside an editable checkout."""
    packaged = Path(str(resources.files("chronoseal"))) / "examples" / "chicago" / "scenario.toml"
    if packaged.is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "examples" / "chicago" / "scenario.toml"
    if checkout.is_file():
        return checkout
    raise ConfigError(
        "the bundled Chicago scenario is missing from this installation; "
        "pass --scenario PATH or reinstall chronoseal",
        id="config.scenario.missing",
    )


def read_scenario(path: Path, kind: type[C]) -> C:
    """The scenario in the TOML file ``path`` as ``kind``, checked (``config.scenario.*``)."""
    raw = read_config(path, "scenario", _ScenarioFile, invalid_id="config.scenario.invalid")
    root = path.parent
    spec_path = root / raw.task.spec
    spec = load_spec(spec_path)
    parties = {name: load_party_config(root / p) for name, p in raw.parties.items()}
    _check(raw, spec, parties, path)
    scenario = kind(
        root=root,
        members=list(raw.consortium.members),
        simulated_tee_allowed=raw.consortium.simulated_tee_allowed,
        spec_path=spec_path,
        spec=spec,
        proposer=raw.task.proposer,
        relayed_approvals=list(raw.task.relayed_approvals),
        parties=parties,
        party_dirs={name: (root / p).parent for name, p in raw.parties.items()},
        party_paths={name: root / p for name, p in raw.parties.items()},
    )
    return scenario.with_workers(raw.compute.workers) if raw.compute.workers else scenario


def _check(raw: _ScenarioFile, spec: TaskSpec, parties: dict[str, PartyConfig], path: Path) -> None:
    orgs = [p.org for p in spec.participants]
    problems = []
    for org in orgs:
        if org not in raw.consortium.members:
            problems.append(f"participant {org!r} is not a consortium member")
        if org not in parties:
            problems.append(f"participant {org!r} has no party config in [parties]")
    for name, cfg in parties.items():
        if cfg.party.name != name:
            problems.append(f"[parties].{name} points at the config of {cfg.party.name!r}")
    if raw.task.proposer not in orgs:
        problems.append(f"proposer {raw.task.proposer!r} is not a participant")
    problems += [
        f"relayed approval by {o!r}, which is not a participant"
        for o in raw.task.relayed_approvals
        if o not in orgs
    ]
    if problems:
        raise ConfigError(
            f"scenario {path} is inconsistent: " + "; ".join(problems),
            id="config.scenario.inconsistent",
        )
