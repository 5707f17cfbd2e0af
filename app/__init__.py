"""The app layer: the only code that knows both Streamlit and mlcore.

Pages call these modules. ``frame`` draws what every page shows first, ``navigation``
lists the pages, ``views`` holds one module of panels per page, ``widgets`` and
``summary`` the pieces several pages share, and ``choices`` what the forms offer;
``state`` owns every per-session key, ``workspace`` the session's runs in the server's
run store and share links, ``address`` what of the setup the URL carries, ``loaders``
the caches, ``jobs`` the training worker, ``runs`` and ``uploads`` what the pages show,
``settings`` the deployment switches, and ``compat`` the one documented workaround
of Streamlit internals.
"""

from app import compat

compat.end_legacy_pages_mode()
