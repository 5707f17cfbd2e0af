"""The app layer: the only code that knows both Streamlit and mlcore.

Pages call these modules; they own caching (``loaders``), per-session state
(``state``), the training worker (``jobs``), runs (``runs``), uploads
(``uploads``), reusable rendering (``render``) and deployment settings
(``settings``).
"""

from streamlit.runtime.pages_manager import PagesManager

# The app always navigates with st.navigation. Until the entry script first calls
# it, Streamlit treats a folder named pages/ as a legacy page directory, so the
# first request after a server start that deep-links to /train runs that page
# file alone. Pages cope (each draws its own frame); this ends the legacy mode
# as soon as any of our code is imported instead of at the next visit to "/".
PagesManager.uses_pages_directory = False
