"""Browser tests: the real Streamlit server driven by the system Chromium through Playwright.

No browser is downloaded: Playwright launches Debian's ``chromium``. Without it the
tests skip locally and fail in CI, where ``.ci/run`` installs it.
"""

from __future__ import annotations

import os

import pytest

from scripts.app_server import CHROMIUM_ARGS, chromium_path, running_app


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    executable = chromium_path()
    if executable is None:
        message = "no system Chromium found (install Debian's 'chromium' package or set CHROMIUM_PATH)"
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI, but {message}")
        pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": executable, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """The app served by ``streamlit run streamlit_app.py`` on a free loopback port."""
    try:
        with running_app(tmp_path_factory.mktemp("server") / "streamlit.log") as (url, _process):
            yield url
    except RuntimeError as error:
        pytest.fail(str(error))
