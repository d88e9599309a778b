"""Celery beat's scheduler: django-celery-beat's, riding out database outages instead of exiting.

The stock DatabaseScheduler swallows a database error while it writes back the entries it ran
(`sync`), but keeps the dead connection, and its full read of the schedule that follows (every
five minutes, or after a staff edit) then fails with "the connection is closed" and beat exits:
no drain, no backup, no tiering until someone restarts it. After a PostgreSQL restart the pool
still holds connections that died with the server, so that is the usual case, not a rare one.

Here every database error is met the same way: beat's connections and their pool are closed
(whatever else the pool held died with the server too), beat keeps the schedule it had and
reads it all again at its next tick.
"""

from __future__ import annotations

import logging

from django import db
from django_celery_beat import schedulers
from psycopg_pool import PoolTimeout

logger = logging.getLogger(__name__)

# django.db.Error covers DatabaseError and InterfaceError (the latter is not a DatabaseError).
DATABASE_ERRORS = (db.Error, PoolTimeout)
# How long beat waits before trying the database again.
RETRY_SECONDS = 5.0


class DatabaseScheduler(schedulers.DatabaseScheduler):
    @property
    def schedule(self) -> dict:
        try:
            return super().schedule
        except DATABASE_ERRORS as error:
            self._database_failed("reading the schedule", error)
            return self._schedule or {}

    def sync(self) -> None:
        super().sync()  # logs and swallows a database error, keeping the connection it broke
        db.close_old_connections()

    def tick(self, *args, **kwargs) -> float:
        try:
            return super().tick(*args, **kwargs)
        except DATABASE_ERRORS as error:
            self._database_failed("checking what is due", error)
            return RETRY_SECONDS

    def _database_failed(self, doing: str, error: Exception) -> None:
        logger.warning(
            "beat: database unavailable while %s (%s); keeping the schedule it had and "
            "reading it again in a moment",
            doing,
            error,
        )
        _connections_drop()
        self._initial_read = True  # the next tick reads the whole schedule again


def _connections_drop() -> None:
    for connection in db.connections.all(initialized_only=True):
        connection.close()
        if connection.settings_dict["OPTIONS"].get("pool"):
            connection.close_pool()  # type: ignore[attr-defined]  # the psycopg backend's
