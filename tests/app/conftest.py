"""AppTest fixtures: the real entry script, driven through its widgets.

Every test starts from ``streamlit_app.py`` (as ``streamlit run`` does) and moves
between pages with ``switch_page``. Training uses the small generated demo set
(120 images at 64 px), so a 2-epoch run takes seconds on two cores. The user's
steps are methods of :class:`Ui`, handed to tests by the ``ui`` fixture.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app import compat, state
from tests.realdata import real_data_root

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "streamlit_app.py"
RUN_TIMEOUT = 120  # seconds per script run: TensorFlow imports and model calls are slow
TRAIN_TIMEOUT = 300


@pytest.fixture(scope="session", autouse=True)
def _navigation_mode():
    """Keep AppTest in ``st.navigation`` mode, as a running server is (``app.compat`` says why).
    Session-scoped so module-scoped app fixtures get it too."""
    with compat.navigation_mode():
        yield


class Ui:
    """What a user does in the browser, as test steps."""

    @staticmethod
    def key(at: AppTest, group: str, name: str) -> str:
        """A widget's key in this session, built by ``app.state`` as the pages build it."""
        return state.widget_key(group, name, at.session_state)

    @staticmethod
    def new_app() -> AppTest:
        """A fresh browser session on the app's default page."""
        return AppTest.from_file(str(ENTRY), default_timeout=RUN_TIMEOUT).run()

    @staticmethod
    def open_address(params: dict[str, str]) -> AppTest:
        """A fresh browser session opened on an address with these query parameters
        (after a server restart, too: the run store is all that is shared)."""
        at = AppTest.from_file(str(ENTRY), default_timeout=RUN_TIMEOUT)
        for key, value in params.items():
            at.query_params[key] = value
        return at.run()

    @staticmethod
    def address(at: AppTest) -> dict[str, str]:
        """The query parameters the session's address bar shows now."""
        return {key: (value[-1] if isinstance(value, list) else value) for key, value in at.query_params.items()}

    @staticmethod
    def open_page(at: AppTest, name: str) -> AppTest:
        return at.switch_page(f"pages/{name}.py").run()

    @staticmethod
    def apply_data_settings(
        at: AppTest, *, source="demo", count=120, size=64, indoor=None, seed=None, folder=None
    ) -> AppTest:
        """Fill in the Data page form and apply it."""
        Ui.open_page(at, "data")
        at.radio(key=Ui.key(at, "data", "source")).set_value(source)
        at.number_input(key=Ui.key(at, "data", "count")).set_value(count)
        at.select_slider(key=Ui.key(at, "data", "size")).set_value(size)
        if indoor is not None:
            at.slider(key=Ui.key(at, "data", "indoor")).set_value(indoor)
        if seed is not None:
            at.number_input(key=Ui.key(at, "data", "seed")).set_value(seed)
        if folder is not None:
            at.text_input(key=Ui.key(at, "data", "folder")).set_value(folder)
        return at.button(key=Ui.key(at, "data", "apply")).click().run()

    @staticmethod
    def start_training(at: AppTest, *, epochs=2, batch_size=8, architecture="seed") -> AppTest:
        """Fill in the Train page form and submit it."""
        Ui.open_page(at, "train")
        at.slider(key=Ui.key(at, "train", "epochs")).set_value(epochs)
        at.select_slider(key=Ui.key(at, "train", "batch")).set_value(batch_size)
        at.radio(key=Ui.key(at, "train", "architecture")).set_value(architecture)
        return at.button(key=Ui.key(at, "train", "start")).click().run()

    @staticmethod
    def wait_until(at: AppTest, condition, timeout: float = TRAIN_TIMEOUT) -> AppTest:
        """Rerun, as the live fragments do, until ``condition(at)`` holds."""
        deadline = time.monotonic() + timeout
        while not condition(at):
            assert time.monotonic() < deadline, "the app did not get there in time"
            assert not at.exception, at.exception
            time.sleep(0.3)
            at.run()
        return at

    @staticmethod
    def wait_for_training(at: AppTest) -> AppTest:
        """Until the session's job has ended and its run was collected."""
        return Ui.wait_until(at, lambda app: state.job(app.session_state) is None)

    @staticmethod
    def train_small_model(epochs: int = 2) -> AppTest:
        """A session that went Data -> Train through the widgets and has a trained run."""
        at = Ui.new_app()
        Ui.apply_data_settings(at)
        Ui.start_training(at, epochs=epochs)
        assert not at.exception, at.exception
        return Ui.wait_for_training(at)

    @staticmethod
    def plotly_figures(at: AppTest) -> list[dict]:
        """Every Plotly chart on the current page, as figure JSON, in page order."""
        return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]

    @staticmethod
    def array(value) -> np.ndarray:
        """A figure's data field as an array: Plotly writes numpy arrays as base64 ``bdata``."""
        if isinstance(value, dict) and "bdata" in value:
            return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return np.asarray(value, dtype=float)

    @staticmethod
    def threshold_mark(figure: dict) -> float:
        """Where a figure's current-threshold line stands."""
        line = next(trace for trace in figure["data"] if trace.get("meta") == "threshold")
        assert line["x"][0] == line["x"][1]
        return line["x"][0]

    @staticmethod
    def figure_titled(at: AppTest, title: str) -> dict:
        for figure in Ui.plotly_figures(at):
            if (figure.get("layout", {}).get("title") or {}).get("text") == title:
                return figure
        raise AssertionError(f"no chart titled {title!r} on the page")

    @staticmethod
    def real_jpeg() -> Path:
        """A real photo from the dataset under MLCORE_DATA_DIR, or skip saying why."""
        folder = real_data_root() / "cats_and_dogs_filtered" / "validation" / "cats"
        return sorted(folder.glob("*.jpg"))[0]


@pytest.fixture
def ui() -> type[Ui]:
    return Ui


@pytest.fixture(scope="module")
def trained_app() -> AppTest:
    """One session per test module that trained a small model through the forms."""
    return Ui.train_small_model()
