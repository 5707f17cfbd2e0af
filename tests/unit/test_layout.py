"""The app's modules load without TensorFlow, which costs seconds: pages must open at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_page_module_imports_tensorflow():
    modules = ["app.frame", "app.navigation", "app.state", "app.uploads", "app.runs", "app.jobs", "app.workspace"]
    modules += ["app.address", "app.summary", "app.choices"]
    modules += [f"app.views.{path.stem}" for path in (ROOT / "app" / "views").glob("*.py") if path.stem != "__init__"]
    loaded = "sorted(m for m in ('keras', 'tensorflow') if m in sys.modules)"
    code = f"import sys; import {', '.join(modules)}; print({loaded})"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
