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


def timed(fn, repeats: int) -> tuple[list[float], object]:
    """Call ``fn`` ``repeats`` times; return the wall times in seconds and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def emit(result: dict) -> None:
    """A child's report: one JSON line on stdout."""
    print(json.dumps(result), flush=True)


def run_child(module: str, args: list[str], env: dict[str, str], timeout: float) -> dict:
    """Run ``python -m benchmarks.<module>`` and return its JSON report."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=timeout,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        tail = "\n".join(completed.stderr.splitlines()[-15:])
        raise RuntimeError(f"benchmarks.{module} {' '.join(args)} failed (rc {completed.returncode}):\n{tail}")
    report = json.loads(lines[-1])
    report["process_seconds"] = round(time.perf_counter() - started, 1)
    return report


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine() -> dict:
    """What the numbers were measured on."""
    from importlib import metadata

    from mlcore import runtime

    flags = _cpu_flags()
    versions = {}
    for name in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "pillow", "streamlit", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": runtime.available_cpus(),
        "memory_gib": _memory_gib(),
        "simd": sorted(flag for flag in flags if flag in {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                                                          "amx_bf16", "amx_tile", "avx_vnni"}),
        "bf16_hardware": bool({"avx512_bf16", "amx_bf16"} & flags),
        "python": platform.python_version(),
        "os": platform.platform(),
        "packages": versions,
    }
