"""Task specification: what every party reviews, approves and hashes into the task id.

A TOML task file becomes a typed :class:`TaskSpec` (participants and roles, datasets with a
desensitization policy for every column, join, model, evaluation, release rules and the
pinned component measurements). Its RFC 8785 canonical JSON, hashed with SHA-256, is the
task's identity on chain. Bottom of the import graph: depends on nothing else in chronoseal
but :mod:`chronoseal.errors`.
"""

from ._cost import (
    SAMPLED_PERMUTATIONS,
    SAMPLING_SEED,
    SHAPLEY_MAX_PLAYERS,
    permutations,
    planned_fits,
    value_coalitions,
)
from ._load import (
    MeasurementResolver,
    canonical_json,
    describe_validation_error,
    load_spec,
    parse_spec,
    read_config_text,
    read_config_toml,
    resolve_measurements,
    task_id,
)
from ._model import (
    Availability,
    Component,
    ContributionRelease,
    Dataset,
    Evaluation,
    Join,
    MeasurementPin,
    Measurements,
    Model,
    Participant,
    Release,
    Role,
    TaskKind,
    TaskSpec,
)
from ._party import Budget, Consent, PartyConfig, load_party_config
from ._policy import (
    Clip,
    ColumnPolicy,
    DatasetPolicy,
    Drop,
    Gaussian,
    Generalize,
    Keep,
    Laplace,
    Mask,
    Pseudonymize,
    Resample,
    Round,
    TimeShift,
    Truncate,
)
from ._review import OnChainTask, ReviewProblem, review_task
from ._validate import EXOGENOUS_FAMILIES, METRICS, MODEL_FAMILIES

__all__ = [
    "EXOGENOUS_FAMILIES",
    "METRICS",
    "MODEL_FAMILIES",
    "SAMPLED_PERMUTATIONS",
    "SAMPLING_SEED",
    "SHAPLEY_MAX_PLAYERS",
    "Availability",
    "Budget",
    "Clip",
    "ColumnPolicy",
    "Component",
    "Consent",
    "ContributionRelease",
    "Dataset",
    "DatasetPolicy",
    "Drop",
    "Evaluation",
    "Gaussian",
    "Generalize",
    "Join",
    "Keep",
    "Laplace",
    "Mask",
    "MeasurementPin",
    "MeasurementResolver",
    "Measurements",
    "Model",
    "OnChainTask",
    "Participant",
    "PartyConfig",
    "Pseudonymize",
    "Release",
    "Resample",
    "ReviewProblem",
    "Role",
    "Round",
    "TaskKind",
    "TaskSpec",
    "TimeShift",
    "Truncate",
    "canonical_json",
    "describe_validation_error",
    "load_party_config",
    "load_spec",
    "parse_spec",
    "permutations",
    "planned_fits",
    "read_config_text",
    "read_config_toml",
    "resolve_measurements",
    "review_task",
    "task_id",
    "value_coalitions",
]
