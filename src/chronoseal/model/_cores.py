"""How many cores this process may use: the fewest of the CPU affinity mask, the cgroup's CPU
quota and an operator's cap.

``os.cpu_count()`` reports the host's CPUs. A runtime in a container (a Kubernetes pod with
``resources.limits.cpu``, a confidential VM's vCPUs pinned by the host) that starts one
thread per host CPU oversubscribes its quota and is throttled; every thread count the
forecasting libraries get (LightGBM threads, back-test worker processes) comes from here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from chronoseal.errors import ConfigError

#: An operator's cap on the cores the runtime uses (a positive integer).
CORES_ENV = "CHRONOSEAL_CORES"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _quota_v2(root: Path) -> float | None:
    """cgroup v2: ``cpu.max`` is ``"max 100000"`` (no limit) or ``"QUOTA PERIOD"``."""
    try:
        text = (root / "cpu.max").read_text().split()
    except OSError:
        return None
    if len(text) != 2 or text[0] == "max":
        return None
    try:
        quota, period = int(text[0]), int(text[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(root: Path) -> float | None:
    """cgroup v1: ``cpu.cfs_quota_us`` is -1 without a limit."""
    for base in (root / "cpu", root / "cpu,cpuacct", root):
        try:
            quota = int((base / "cpu.cfs_quota_us").read_text().strip())
            period = int((base / "cpu.cfs_period_us").read_text().strip())
        except (OSError, ValueError):
            continue
        return quota / period if quota > 0 and period > 0 else None
    return None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The cgroup's CPU quota in cores (e.g. 1.5), or None when it sets none."""
    quota = _quota_v2(root)
    return quota if quota is not None else _quota_v1(root)


def available_cores(
    root: Path = CGROUP_ROOT,
    *,
    affinity: int | None = None,
    environ: dict[str, str] | None = None,
) -> int:
    """Cores to use, never fewer than one: a fractional quota rounds up (1.5 cores → 2
    threads would be throttled half the time, 1 would leave half unused; the scheduler
    shares the rest)."""
    env = os.environ if environ is None else environ
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = affinity or os.cpu_count() or 1
    quota = cgroup_cpu_limit(root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    cap = env.get(CORES_ENV)
    if cap:
        try:
            limit = int(cap)
        except ValueError:
            limit = 0
        if limit < 1:
            raise ConfigError(
                f"{CORES_ENV}={cap!r} is not a positive number of cores",
                id="analysis.cores.invalid",
            )
        cores = min(cores, limit)
    return max(1, cores)
