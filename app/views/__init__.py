"""One view module per page: the panels that page is assembled from.

Each module reads and writes persistent values through :mod:`app.state`, draws
with Streamlit and shows mlcore's errors as messages, never as tracebacks.
"""
