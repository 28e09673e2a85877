"""Laplace and Gaussian noise on a fixed power-of-two grid, drawn from AES-256-CTR.

Why a grid: textbook floating-point Laplace leaks the input through which doubles it can and
cannot produce (Mironov, CCS 2012). Every noisy value is first rounded to a grid of spacing
``gamma = 2**(floor(log2(sensitivity)) - 10)`` and the noise is an integer number of grid steps,
so the released value is always a grid point and every grid point is reachable from every
input. Rounding the input can move two neighbouring inputs apart by one more step, so the
mechanisms are calibrated to the integer sensitivity ``floor(sensitivity / gamma) + 1`` steps
(at most 0.2 % more noise than the textbook scale).

* Laplace: the difference of two geometric variables, i.e. the discrete Laplace distribution
  with ``P(k) ~ exp(-epsilon |k| / steps)``, which is epsilon-DP for an integer query of
  sensitivity ``steps`` (Canonne, Kamath, Steinke 2020). The geometric variables come from an
  inverse CDF in double precision, so their probabilities are exact only to about 2**-53.
* Gaussian: the classic mechanism, sigma = steps * gamma * sqrt(2 ln(1.25/delta)) / epsilon,
  valid only for epsilon <= 1 (Dwork and Roth, Theorem A.1); larger epsilon is refused. The
  continuous sample (Box-Muller) is rounded to the grid, which is post-processing of the
  Gaussian mechanism on the rounded input; the Box-Muller sample itself is a double, so this is
  not an exact discrete Gaussian sampler.

Randomness: AES-256-CTR keystream under a 32-byte seed (``os.urandom`` unless a test passes
one). The seed is not derived from the task key: the analysis runtime and every gateway hold
that key, and noise anyone can regenerate can be subtracted.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chronoseal.errors import DataError
from chronoseal.spec import Gaussian, Laplace

_GRID_BITS = 10
# Beyond 2**52 grid steps a double can no longer represent every grid point.
_MAX_STEPS = float(2**52)

Floats = npt.NDArray[np.float64]


class NoiseSource:
    """Uniform doubles in (0, 1] from an AES-256-CTR keystream; a CSPRNG, unlike numpy's PCG64."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise DataError("the noise seed must be 32 bytes", id="data.noise.bad_seed")
        self._stream = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()

    def uniform(self, n: int) -> Floats:
        words = np.frombuffer(self._stream.update(bytes(8 * n)), dtype=np.uint64)
        return ((words >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53


def grid(sensitivity: float) -> float:
    """The grid spacing: a power of two about a thousandth of the sensitivity."""
    return math.ldexp(1.0, math.floor(math.log2(sensitivity)) - _GRID_BITS)


def sensitivity_steps(sensitivity: float) -> int:
    """The sensitivity in grid steps after the input is rounded to the grid."""
    return math.floor(sensitivity / grid(sensitivity)) + 1


def laplace_scale(rule: Laplace) -> float:
    """The Laplace scale b actually used: (sensitivity, rounded up to the grid) / epsilon."""
    return sensitivity_steps(rule.sensitivity) * grid(rule.sensitivity) / rule.epsilon


def gaussian_sigma(rule: Gaussian) -> float:
    """The Gaussian sigma actually used; refuses epsilon > 1, where the formula is not valid."""
    if rule.epsilon > 1.0:
        raise DataError(
            f"the classic Gaussian mechanism needs epsilon <= 1 (got {rule.epsilon}); "
            "use laplace, or split the budget",
            id="data.policy.gaussian_epsilon",
            context={"epsilon": rule.epsilon},
        )
    steps = sensitivity_steps(rule.sensitivity) * grid(rule.sensitivity)
    return steps * math.sqrt(2.0 * math.log(1.25 / rule.delta)) / rule.epsilon


def _on_grid(values: pa.Array, gamma: float, column: str) -> tuple[Floats, Floats]:
    """The input in grid steps (nulls as 0) and its validity mask."""
    x = values.cast(pa.float64())
    valid = np.asarray(x.is_valid(), dtype=bool)
    steps = np.round(np.asarray(x.fill_null(0.0), dtype=np.float64) / gamma)
    bad = valid & ~(np.abs(steps) < _MAX_STEPS)
    if bad.any():
        raise DataError(
            f"column {column!r}: {int(bad.sum())} values are not finite or too large for the "
            "noise grid of their sensitivity",
            id="data.noise.out_of_range",
            context={"column": column, "count": int(bad.sum())},
        )
    return steps, valid.astype(np.float64)


def _released(steps: Floats, noise: Floats, valid: Floats, gamma: float, column: str) -> pa.Array:
    total = steps + noise
    wild = (valid != 0) & ~(np.abs(total) < _MAX_STEPS)
    if wild.any():
        raise DataError(
            f"column {column!r}: the noise drawn for {int(wild.sum())} values is beyond the "
            "grid a double can hold (the rule's scale would destroy the data)",
            id="data.noise.out_of_range",
            context={"column": column, "count": int(wild.sum())},
        )
    out = total * gamma
    return pa.array(out, type=pa.float64(), mask=valid == 0.0)


def discrete_laplace(source: NoiseSource, n: int, scale_steps: float) -> Floats:
    """n draws of the discrete Laplace with P(k) ~ exp(-|k| / scale_steps)."""
    u = source.uniform(2 * n)
    geometric = np.floor(-scale_steps * np.log(u))
    return geometric[:n] - geometric[n:]


def standard_normal(source: NoiseSource, n: int) -> Floats:
    """n standard normal draws (Box-Muller)."""
    u = source.uniform(2 * n)
    return np.sqrt(-2.0 * np.log(u[:n])) * np.cos(2.0 * math.pi * u[n:])


def add_laplace(values: pa.Array, rule: Laplace, source: NoiseSource, column: str) -> pa.Array:
    gamma = grid(rule.sensitivity)
    steps, valid = _on_grid(values, gamma, column)
    noise = discrete_laplace(source, len(values), laplace_scale(rule) / gamma)
    return _released(steps, noise, valid, gamma, column)


def add_gaussian(values: pa.Array, rule: Gaussian, source: NoiseSource, column: str) -> pa.Array:
    gamma = grid(rule.sensitivity)
    sigma_steps = gaussian_sigma(rule) / gamma
    steps, valid = _on_grid(values, gamma, column)
    noise = np.round(standard_normal(source, len(values)) * sigma_steps)
    return _released(steps, noise, valid, gamma, column)
