"""The project uses public APIs only, except the workarounds in ``app/compat.py``, and
those fail here as soon as an upgrade of Streamlit or Keras makes them wrong or unneeded."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKAROUNDS = ROOT / "app" / "compat.py"
PRIVATE_MODULES = ("streamlit.runtime", "keras.src")


def project_files() -> list[Path]:
    folders = ("app", "mlcore", "pages", "benchmarks", "scripts", "tests")
    files = [path for folder in folders for path in (ROOT / folder).rglob("*.py")]
    return sorted([ROOT / "streamlit_app.py", *files])


def private_uses(path: Path) -> list[str]:
    """Imports of private modules and ``x._name`` accesses (other than ``self``/``cls``) in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PRIVATE_MODULES):
            names = [node.module]
        elif isinstance(node, ast.ImportFrom):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            names = []
        found += [f"line {node.lineno}: import {name}" for name in names if name.startswith(PRIVATE_MODULES)]
        if isinstance(node, ast.ImportFrom):
            found += [
                f"line {node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__"):
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if owner not in ("self", "cls"):
                found.append(f"line {node.lineno}: .{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr == "runtime" and _dotted(node.value) == "st":
            found.append(f"line {node.lineno}: st.runtime")
        if isinstance(node, ast.Call):
            found += [f"line {node.lineno}: {text}" for text in _dynamic_private_use(node)]
    return found


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _dynamic_private_use(call: ast.Call) -> list[str]:
    """``getattr(x, "_y")`` and kin (``monkeypatch.setattr`` too), ``import_module("streamlit.runtime…")``."""
    name = _dotted(call.func).rsplit(".", 1)[-1]
    strings = [arg.value for arg in call.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
    if name in ("getattr", "setattr", "hasattr", "delattr"):
        return [f"{name} {text}" for text in strings if text.startswith("_") and not text.endswith("__")]
    if name in ("import_module", "__import__"):
        return [f"import {text}" for text in strings if text.startswith(PRIVATE_MODULES)]
    return []


def test_private_apis_are_used_only_in_the_workaround_module():
    offenders = {
        str(path.relative_to(ROOT)): uses
        for path in project_files()
        if path != WORKAROUNDS and (uses := private_uses(path))
    }
    assert offenders == {}
    assert private_uses(WORKAROUNDS), "the scan finds what it looks for"


def test_streamlit_still_starts_in_legacy_pages_mode_beside_a_pages_folder():
    """Else end_legacy_pages_mode (and navigation_mode) are wrong or unneeded: remove them."""
    from app import compat

    assert compat.legacy_pages_mode_starts(ROOT / "streamlit_app.py")


def test_apptest_still_resets_the_pages_flag_before_each_run():
    """Else navigation_mode (used by the app tests and the interaction benchmark) is unneeded."""
    from app import compat

    assert compat.apptest_resets_pages_mode()


def test_streamlit_still_clears_keras_after_each_script_run():
    """Else the clear_session shield is unneeded: remove app.compat.shield_keras."""
    from app import compat

    assert compat.streamlit_clears_keras()


def test_clear_session_from_another_thread_still_resets_a_model_builders_names():
    """The hazard the shield exists for: Streamlit's call on the script thread resets Keras'
    naming state in the training thread, which then reuses a name. If Keras makes this
    state per thread, this test fails and the shield can go."""
    import keras

    names: list[str] = []
    built, cleared = threading.Event(), threading.Event()

    def build() -> None:
        names.extend([keras.layers.Dense(1).name, keras.layers.Dense(1).name])
        built.set()
        cleared.wait(30)
        names.append(keras.layers.Dense(1).name)

    keras.backend.clear_session()
    worker = threading.Thread(target=build)
    worker.start()
    assert built.wait(30)
    keras.backend.clear_session()  # no training thread is counted, so the call goes through
    cleared.set()
    worker.join(30)
    assert names[2] == names[0] != names[1]


def test_the_shield_skips_clear_session_while_a_training_thread_is_alive():
    import keras

    from app import jobs

    jobs.prepare_keras()
    keras.backend.clear_session()
    first = keras.layers.Dense(1).name
    with jobs.worker_running():
        keras.backend.clear_session()
        assert keras.layers.Dense(1).name != first, "skipped: the naming state survives"
    keras.backend.clear_session()
    assert keras.layers.Dense(1).name == first, "with no training thread the call goes through"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from streamlit.runtime.scriptrunner import get_script_run_ctx\n",
            ["line 1: import streamlit.runtime.scriptrunner"],
        ),
        ("import keras.src.layers\n", ["line 1: import keras.src.layers"]),
        ("model._flatten_layers()\n", ["line 1: ._flatten_layers"]),
        ("from keras.utils import _private\n", ["line 1: import _private"]),
        ("from streamlit import runtime\n", ["line 1: import streamlit.runtime"]),
        ("self._lock = 1\nx.__class__\ngetattr(x, 'name')\n", []),
        (
            "getattr(model, '_layers')\nmonkeypatch.setattr(obj, '_flag', 1)\n",
            ["line 1: getattr _layers", "line 2: setattr _flag"],
        ),
        ("importlib.import_module('keras.src.saving')\n", ["line 1: import keras.src.saving"]),
        ("st.runtime.exists()\n", ["line 1: st.runtime"]),
    ],
)
def test_the_scan_sees_each_kind_of_private_use(tmp_path, source, expected):
    path = tmp_path / "sample.py"
    path.write_text(source)
    assert private_uses(path) == expected
