"""Entry point: ``streamlit run streamlit_app.py``.

Builds the navigation over the files in pages/; each page then draws the shared
frame (page settings, session state, sidebar status) with ``frame.page_frame``.
"""

import streamlit as st

from app import navigation, state

state.mark_entry()
pages = [
    st.Page(path, title=title, icon=icon, default=path == navigation.DEFAULT_PAGE)
    for path, (title, icon) in navigation.PAGES.items()
]
st.navigation(pages).run()
