"""Deployment manifests for a task's components: Kubernetes (Confidential Containers runtime
classes for TDX and SEV-SNP, the Intel SGX device plugin for SGX) and Gramine (SGX enclaves).

Input is plain data, :class:`DeployInput` (the task spec and each party's config with the text
its pods read); the CLI builds it from a scenario. Nothing here talks to a cluster or a chain:
it renders files. Refusals are :class:`~chronoseal.errors.DeployError` with ids such as
``deploy.tee.unsupported``, ``deploy.secret.in_config`` or ``deploy.gramine.no_sgx_component``.
"""

from ._k8s import DEFAULT_RESOURCES, K8sOptions, Resources, default_image
from ._layout import (
    ANALYSIS_INTAKE_PORT,
    DASK_SCHEDULER_PORT,
    HEALTH_PORT,
    PREDICTION_FEEDS_PORT,
    PREDICTION_FORECASTS_PORT,
    PREDICTION_HANDOVER_PORT,
    WORKER_ADMISSION_PORT,
    WORKER_DASK_PORT,
)
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
    "WORKER_ADMISSION_PORT",
    "WORKER_DASK_PORT",
    "Component",
    "DeployInput",
    "K8sOptions",
    "Kind",
    "PartyInput",
    "Placement",
    "Plan",
    "Rendered",
    "Resources",
    "default_image",
    "placement",
    "plan",
    "render_gramine",
    "render_k8s",
]
