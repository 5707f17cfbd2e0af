import os

import pytest

from mlcore import runtime


def _affinity():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("150000 100000\n", 1.5),
        ("max 100000\n", None),
        ("50000 100000", 0.5),
    ],
)
def test_cgroup_v2_quota(tmp_path, content, expected):
    (tmp_path / "cpu.max").write_text(content)
    assert runtime.cgroup_cpu_limit(tmp_path) == expected


def test_cgroup_v1_quota_and_no_cgroup(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert runtime.cgroup_cpu_limit(tmp_path) == 2.0
    assert runtime.cgroup_cpu_limit(tmp_path / "missing") is None


def test_available_cpus_takes_the_quota_when_it_is_lower(tmp_path):
    (tmp_path / "cpu.max").write_text("50000 100000")
    assert runtime.available_cpus(tmp_path) == 1  # half a CPU still gets one thread
    (tmp_path / "cpu.max").write_text(f"{(_affinity() + 8) * 100000} 100000")
    assert runtime.available_cpus(tmp_path) == _affinity()
