"""Entry point: ``streamlit run streamlit_app.py``.

Builds the navigation over the files in pages/; each page then draws the shared
frame (page settings, session state, sidebar status) with ``render.page_frame``.
"""

import streamlit as st

from app import render

pages = [st.Page(path, title=title, icon=icon, default=path == render.DEFAULT_PAGE)
         for path, (title, icon) in render.PAGES.items()]
st.navigation(pages).run()
