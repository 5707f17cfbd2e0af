"""Shared helpers: the machine's description, medians, peak memory, child processes.

Every measurement runs in a fresh Python process (``python -m benchmarks.<name>``)
so import costs, TensorFlow's one-time settings and peak memory belong to that
measurement alone. A child prints one JSON object as its last stdout line.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median(values) -> float:
    return float(statistics.median(values))


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeats: int) -> list[float]:
    """Call ``fn`` ``repeats`` times; return each call's wall time in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def emit(result: dict) -> None:
    """A child's report: one JSON line on stdout."""
    print(json.dumps(result), flush=True)


def run_child(module: str, args: list[str], env: dict[str, str], timeout: float) -> dict:
    """Run ``python -m benchmarks.<module>`` and return its JSON report."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        tail = "\n".join(completed.stderr.splitlines()[-15:])
        raise RuntimeError(f"benchmarks.{module} {' '.join(args)} failed (rc {completed.returncode}):\n{tail}")
    report = json.loads(lines[-1])
    report["process_seconds"] = round(time.perf_counter() - started, 1)
    return report


def _proc_field(path: str, name: str) -> str | None:
    """The value after the first ``name ...:`` line of a /proc file, if there is one."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> dict:
    """What the numbers were measured on."""
    from importlib import metadata

    from mlcore import runtime

    flags = runtime.cpu_flags()
    memory_kib = _proc_field("/proc/meminfo", "MemTotal")
    versions = {}
    for name in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "pillow", "streamlit", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "logical_cpus": os.cpu_count(),
        "usable_cpus": runtime.available_cpus(),
        "memory_gib": round(int(memory_kib.split()[0]) / 1024**2, 1) if memory_kib else None,
        "simd": sorted(
            flag
            for flag in flags
            if flag in {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "avx_vnni"}
        ),
        "bf16_hardware": runtime.bfloat16_native(flags),
        "training_policy": runtime.training_policy(flags=flags),
        "python": platform.python_version(),
        "os": platform.platform(),
        "packages": versions,
    }
