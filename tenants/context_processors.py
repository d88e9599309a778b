"""Template context processors of the tenants app."""

from __future__ import annotations

from tenants import db


def database_released(request) -> dict:
    """Give the database connection back to the pool as a page starts to render.

    Not context at all: rendering is the view's last step, and it needs no database (a lazy
    queryset it still evaluates takes a connection again). Runs first, for every template a
    request renders.
    """
    db.connection_release()
    return {}
