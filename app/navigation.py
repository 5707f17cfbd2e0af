"""The app's pages: one table the entry script builds its navigation from, and links to them."""

from __future__ import annotations

import streamlit as st

PAGES = {  # file -> (title, icon); the entry script builds the navigation from this
    "pages/data.py": ("Data", ":material/photo_library:"),
    "pages/train.py": ("Train", ":material/model_training:"),
    "pages/evaluate.py": ("Evaluate", ":material/tune:"),
    "pages/predict.py": ("Predict", ":material/image_search:"),
    "pages/runs.py": ("Runs", ":material/history:"),
    "pages/compare.py": ("Compare", ":material/compare_arrows:"),
}
DEFAULT_PAGE = "pages/data.py"


def page_link(path: str) -> None:
    """A link to one of :data:`PAGES`, with its title and icon."""
    title, icon = PAGES[path]
    st.page_link(path, label=title, icon=icon)
