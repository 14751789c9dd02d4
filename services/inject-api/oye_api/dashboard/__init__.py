"""The dashboard: a live web page on the inject-api, at ``/`` on the API's own port.

Plain HTML, CSS and ES modules in ``static/`` (no build step, nothing fetched from
elsewhere), served by :mod:`.pages`; the live feed over a WebSocket (:mod:`.live`,
:mod:`.hub`, :mod:`.feed`); login with the API's users and a signed session cookie
(:mod:`.session`, :mod:`.auth`), which the ``/api/*`` routes accept besides HTTP Basic.
Everything else the page does goes through the existing ``/api/*`` routes.
"""

from __future__ import annotations

from fastapi import FastAPI

from oye_api.dashboard import live, pages
from oye_api.dashboard.auth import session_or_basic


def install(app: FastAPI) -> None:
    """Add the dashboard to the app: its routes, its assets, and its cookie on ``/api/*``."""
    app.include_router(pages.router)
    app.include_router(live.router)
    app.mount(pages.STATIC_PATH, pages.static_files(), name="dashboard-static")
    # Every route that required HTTP Basic now also takes the session cookie; Basic
    # itself is judged exactly as before (session_or_basic falls through to it).
    app.state.authenticate = session_or_basic


__all__ = ["install"]
