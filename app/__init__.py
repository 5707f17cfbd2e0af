"""The app layer: the only code that knows both Streamlit and mlcore.

Pages call these modules. ``frame`` draws what every page shows first, ``navigation``
lists the pages, ``views`` holds one module of panels per page and ``widgets`` the
pieces several pages share; ``state`` owns every per-session key, ``loaders`` the
caches, ``jobs`` the training worker, ``runs`` and ``uploads`` what the pages show,
``settings`` the deployment switches, and ``compat`` the one documented workaround
of Streamlit internals.
"""

from app import compat

compat.end_legacy_pages_mode()
