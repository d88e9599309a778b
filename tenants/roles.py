"""Create the database roles and grants that row-level security depends on.

- the owner role owns the schema and tables and runs migrations;
- the application role gets DML on the owner's tables (now and, by default privileges, later),
  and is never a superuser, never BYPASSRLS, never an owner, and never a member of the
  all-tenants reader: it has no path to another tenant's rows;
- the staff read role (DATABASE_STAFF_READ_URL) may only SELECT, in read-only transactions; it
  belongs to `metis_read_all_tenants`, the one role the all-tenants policies admit.

Run by `python manage.py db_roles` with an administrator connection (DATABASE_ADMIN_URL); on a
managed server a DBA runs the equivalent SQL by hand (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from tenants.seal import ALL_TENANTS_READER


def _url_parts(url: str) -> tuple[str, str | None, str]:
    parts = urlsplit(url)
    return (
        unquote(parts.username or ""),
        (unquote(parts.password) if parts.password else None),
        parts.path.lstrip("/"),
    )


def _ensure_role(cursor, name: str, password: str | None, attributes: str) -> str:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
    verb = "altered" if cursor.fetchone() else "created"
    if verb == "created":
        cursor.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
    statement = sql.SQL("ALTER ROLE {} " + attributes).format(sql.Identifier(name))
    if password:
        statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
    cursor.execute(statement)
    return f"role {name}: {verb} ({attributes})"


def database_roles_ensure(
    *,
    admin_url: str,
    app_url: str,
    owner_url: str,
    staff_read_url: str,
    database: str | None = None,
    report: Callable[[str], None] = print,
) -> None:
    """Create or update the three roles, the database and the grants. Safe to run again."""
    app, app_password, app_db = _url_parts(app_url)
    owner, owner_password, _ = _url_parts(owner_url)
    reader, reader_password, _ = _url_parts(staff_read_url)
    database = database or app_db
    if len({app, owner, reader}) < 3:
        raise ValueError("the application, owner and staff read roles must all differ")
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.cursor() as cursor:
        # Roles are cluster-wide: parallel callers (test workers) altering the same role would
        # fail with "tuple concurrently updated". Take turns.
        cursor.execute("SELECT pg_advisory_lock(hashtext('metis.database_roles_ensure'))")
        report(
            _ensure_role(
                cursor, owner, owner_password, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE"
            )
        )
        report(
            _ensure_role(
                cursor, app, app_password, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB"
            )
        )
        report(_ensure_role(cursor, ALL_TENANTS_READER, None, "NOLOGIN NOSUPERUSER NOBYPASSRLS"))
        report(
            _ensure_role(
                cursor, reader, reader_password, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE"
            )
        )
        role_names = {
            "reader": sql.Identifier(reader),
            "app": sql.Identifier(app),
            "all": sql.Identifier(ALL_TENANTS_READER),
        }
        for statement in (
            "ALTER ROLE {reader} SET default_transaction_read_only = on",
            # Django's connections run in UTC; as the roles' default, the pool's DISCARD ALL
            # (RESET ALL) keeps it, and no checkout needs a SET TIME ZONE again.
            "ALTER ROLE {app} SET timezone = 'UTC'",
            "ALTER ROLE {reader} SET timezone = 'UTC'",
            # No JIT compilation: our queries are short, and the planner's cost of a query with
            # the RLS policy and a correlated subquery over a million rows crosses jit_above_cost,
            # whereupon compiling took 6-7 s of a 7-8 s tiering plan that runs in 1 s without it
            # (bench/scale_documents.py).
            "ALTER ROLE {app} SET jit = off",
            "ALTER ROLE {reader} SET jit = off",
            "GRANT {all} TO {reader}",
            # Whoever granted it, the runtime role must have no path to every tenant.
            "REVOKE {all} FROM {app}",
        ):
            cursor.execute(sql.SQL(statement).format(**role_names))
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        if cursor.fetchone() is None:
            cursor.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(owner)
                )
            )
            report(f"database {database}: created, owned by {owner}")
    admin_db_url = urlsplit(admin_url)._replace(path="/" + database).geturl()
    grants = [
        "GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {owner}",
        # No temporary tables for the runtime role: one would shadow a real table for every
        # later user of the same pooled connection.
        "GRANT CONNECT ON DATABASE {db} TO {app}, {reader}",
        "REVOKE TEMPORARY ON DATABASE {db} FROM {app}, {reader}, PUBLIC",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        "GRANT USAGE, CREATE ON SCHEMA public TO {owner}",
        "GRANT USAGE ON SCHEMA public TO {app}, {reader}",
        "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
        "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        "GRANT USAGE, SELECT ON SEQUENCES TO {app}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app}",
        "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        "GRANT SELECT ON TABLES TO {reader}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}",
        # The audit log stays append-only for the runtime role whatever was granted above; its
        # chain bookkeeping is the owner's alone (audit/schema.py, GRANTS_SQL).
        "DO $$ BEGIN IF to_regclass('public.audit_log') IS NOT NULL THEN "
        "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {app}; "
        "REVOKE ALL ON audit_log_default, audit_chain_heads, audit_retention_cuts FROM {app}; "
        "END IF; END $$",
    ]
    names = {
        "db": sql.Identifier(database),
        "owner": sql.Identifier(owner),
        "app": sql.Identifier(app),
        "reader": sql.Identifier(reader),
    }
    with psycopg.connect(admin_db_url, autocommit=True) as conn, conn.cursor() as cursor:
        for grant in grants:
            cursor.execute(sql.SQL(grant).format(**names))
    report(f"grants: {app} may read and write {owner}'s tables in {database}; it owns none")
    report(f"grants: {reader} may only read them, and every tenant's rows (staff all-tenants)")
