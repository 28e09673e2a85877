"""Desensitization under the policy every party approved, and the party's privacy budget.

A gateway builds one :class:`Desensitizer` per dataset and task from the task key the
analysis runtime handed it, charges :func:`dataset_cost` to its :class:`BudgetLedger` before
sending anything, and streams the released batches. Default deny: a batch with a column the
policy does not name, or without one it names, is refused whole. See ``docs/privacy.md`` for
what each transform guarantees and what it does not.
"""

from ._budget import BudgetLedger, PrivacyCost, dataset_cost, deployment_id
from ._desensitizer import Desensitizer
from ._noise import gaussian_sigma, laplace_scale

__all__ = [
    "BudgetLedger",
    "Desensitizer",
    "PrivacyCost",
    "dataset_cost",
    "deployment_id",
    "gaussian_sigma",
    "laplace_scale",
]
