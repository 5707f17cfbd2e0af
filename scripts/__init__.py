"""Developer scripts: screenshots, a managed app server."""
