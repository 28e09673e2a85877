"""Deployment manifests for a task's components: Kubernetes (Confidential Containers runtime
classes for TDX and SEV-SNP, the Intel SGX device plugin for SGX) and Gramine (SGX enclaves).

Input is plain data, :class:`DeployInput` (the task spec and each party's config with the text
its pods read); the CLI builds it from a scenario. Nothing here talks to a cluster or a chain:
it renders files. Refusals are :class:`~chronoseal.errors.DeployError` with ids such as
``deploy.tee.unsupported``, ``deploy.secret.in_config`` or ``deploy.gramine.no_sgx_component``.
With :class:`ValidatorsInput` (``--validators``) it also renders each founding member's
validator node of the consortium chain and points each party's components at its own.
"""

from ._k8s import DEFAULT_RESOURCES, K8sOptions, Resources, default_image
from ._layout import (
    ANALYSIS_INTAKE_PORT,
    DASK_SCHEDULER_PORT,
    HEALTH_PORT,
    PREDICTION_FEEDS_PORT,
    PREDICTION_FORECASTS_PORT,
    PREDICTION_HANDOVER_PORT,
    VALIDATOR_P2P_PORT,
    VALIDATOR_RPC_PORT,
    WORKER_ADMISSION_PORT,
    WORKER_DASK_PORT,
)
from ._members import MemberValidator, ValidatorsInput, parse_validators
from ._plan import Component, DeployInput, Kind, PartyInput, Plan, plan
from ._render import Rendered, render_gramine, render_k8s
from ._tee import COCO_RUNTIME_CLASSES, SUPPORTED_TEES, Placement, placement

__all__ = [
    "ANALYSIS_INTAKE_PORT",
    "COCO_RUNTIME_CLASSES",
    "DASK_SCHEDULER_PORT",
    "DEFAULT_RESOURCES",
    "HEALTH_PORT",
    "PREDICTION_FEEDS_PORT",
    "PREDICTION_FORECASTS_PORT",
    "PREDICTION_HANDOVER_PORT",
    "SUPPORTED_TEES",
    "VALIDATOR_P2P_PORT",
    "VALIDATOR_RPC_PORT",
    "WORKER_ADMISSION_PORT",
    "WORKER_DASK_PORT",
    "Component",
    "DeployInput",
    "K8sOptions",
    "Kind",
    "MemberValidator",
    "PartyInput",
    "Placement",
    "Plan",
    "Rendered",
    "Resources",
    "ValidatorsInput",
    "default_image",
    "parse_validators",
    "placement",
    "plan",
    "render_gramine",
    "render_k8s",
]
