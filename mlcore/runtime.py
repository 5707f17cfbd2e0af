"""Process-level settings: match TensorFlow's thread pools to the CPUs we may use.

Containers (Streamlit Community Cloud among them) often show the host's core
count while a cgroup quota allows far fewer; sizing thread pools by the host
count makes every op oversubscribe the real CPUs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_configured = False


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max`` or v1 CFS files), if any."""
    v2 = root / "cpu.max"
    try:
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 else None
    except (OSError, ValueError):
        return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may actually use: affinity mask and cgroup quota, whichever is lower."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    return max(1, count)


def configure_threads() -> int:
    """Size TensorFlow's intra/inter-op pools to :func:`available_cpus`, once per process."""
    global _configured
    cpus = available_cpus()
    if _configured:
        return cpus
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, cpus))
    except RuntimeError:
        pass  # TensorFlow already started its pools; keep what it has
    _configured = True
    return cpus
