"""Throw-away databases for the test suite and benchmarks, set up as production is.

A scratch database is created through DATABASE_ADMIN_URL, given to the owner role with the
application role's grants, and migrated as the owner; both Django aliases then point at it, so
code under test talks to it as the runtime role that RLS binds.
"""

from __future__ import annotations

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from psycopg import sql

from tenants import roles


def close_all_connections() -> None:
    for alias in connections:
        connections[alias].close()
        connections[alias].close_pool()


def scratch_database_create(name: str) -> None:
    """(Re)create database `name`, migrate it as the owner and point both aliases at it."""
    scratch_database_drop(name)
    roles.database_roles_ensure(
        admin_url=settings.DATABASE_ADMIN_URL,
        app_url=settings.DATABASE_URL,
        owner_url=settings.DATABASE_OWNER_URL,
        staff_read_url=settings.DATABASE_STAFF_READ_URL,
        database=name,
        report=lambda line: None,
    )
    for alias in ("default", "owner", "staff_read"):
        settings.DATABASES[alias]["NAME"] = name
    call_command("migrate", database="owner", verbosity=0)


def scratch_database_drop(name: str) -> None:
    close_all_connections()
    with psycopg.connect(settings.DATABASE_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
