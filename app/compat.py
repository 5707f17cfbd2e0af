"""The one module that works around Streamlit internals, and why.

Checked against Streamlit 1.67.0 and Keras 3.15.1. Two behaviours have no public
switch; ``tests/unit/test_compat.py`` fails when an upgrade changes either one, so
that each workaround is removed as soon as it is no longer needed (or fixed when
it stops working).

1. **A ``pages/`` folder and ``st.navigation``.** A folder named ``pages/`` beside
   the entry script puts the server in the legacy multipage mode
   (``PagesManager.uses_pages_directory``) until the entry script first calls
   ``st.navigation``; until then a request that deep-links to ``/train`` runs
   ``pages/train.py`` alone, without the entry script. Streamlit clears the flag
   itself on the first ``st.navigation`` call; we clear it as soon as our code is
   imported. That is still too late for the very first script run of a server when
   it deep-links (a bookmarked ``/runs?ws=…`` opened after a restart): the entry
   script marks every run it starts (``state.mark_entry``), and a page frame that
   finds no mark reruns, through the entry script this time. AppTest (1.67) resets
   the flag before every run, so the app tests and the interaction benchmark keep
   it cleared with :func:`navigation_mode`.
2. **Streamlit resets Keras after every script run.** Once ``keras`` is imported,
   Streamlit calls ``keras.backend.clear_session()`` after every script and
   fragment run. That replaces Keras' global state for *every* thread: a training
   thread building a model at that moment gives two layers one auto-generated name
   ("The name "conv2d" is used 2 times in the model"; 6 of 6 stress runs failed).
   :func:`shield_keras` makes the call a no-op while a training thread is alive.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner

_STREAMLIT_INIT = PagesManager.__init__  # Streamlit's own, before navigation_mode wraps it


def end_legacy_pages_mode() -> None:
    """Navigate with ``st.navigation`` from the first request on (see 1. above)."""
    PagesManager.uses_pages_directory = False


def legacy_pages_mode_starts(entry_script: Path) -> bool:
    """Whether Streamlit, starting fresh, would treat ``entry_script``'s ``pages/`` folder
    as a legacy page directory and run pages alone: the reason for :func:`end_legacy_pages_mode`.
    False when an upgrade drops the mode or renames the flag (then the workaround is wrong)."""
    if "PagesManager.uses_pages_directory" not in inspect.getsource(script_runner):
        return False  # script runs no longer consult the flag
    saved = PagesManager.uses_pages_directory
    PagesManager.uses_pages_directory = None
    try:
        _STREAMLIT_INIT(PagesManager.__new__(PagesManager), str(entry_script))
        return PagesManager.uses_pages_directory is True
    finally:
        PagesManager.uses_pages_directory = saved


@contextlib.contextmanager
def navigation_mode() -> Iterator[None]:
    """Keep AppTest in ``st.navigation`` mode, as a running server is after its first run.

    AppTest resets the legacy flag before every run; without this it would run a
    page file alone on ``switch_page``, skipping the entry script.
    """
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        end_legacy_pages_mode()

    PagesManager.__init__ = init
    try:
        yield
    finally:
        PagesManager.__init__ = original


def apptest_resets_pages_mode() -> bool:
    """Whether AppTest still resets the legacy-pages flag before every run: the reason for
    :func:`navigation_mode`."""
    from streamlit.testing.v1 import app_test

    return "PagesManager.uses_pages_directory = None" in inspect.getsource(app_test)


def streamlit_clears_keras() -> bool:
    """Whether Streamlit still calls ``keras.backend.clear_session`` after script runs, looked up
    on the ``keras`` module at call time (so that :func:`shield_keras`'s replacement is the one
    called; see 2.)."""
    source = inspect.getsource(script_runner._clean_problem_modules)
    return 'sys.modules["keras"]' in source and ".backend.clear_session()" in source


def shield_keras(training: Callable[[], bool]) -> None:
    """Make ``keras.backend.clear_session`` a no-op while ``training()`` is true (once per process)."""
    import keras

    original = keras.backend.clear_session
    if getattr(original, "mlapp_shield", False):
        return

    @functools.wraps(original)
    def clear_session(*args, **kwargs):
        if training():
            return None
        return original(*args, **kwargs)

    clear_session.mlapp_shield = True
    keras.backend.clear_session = clear_session
