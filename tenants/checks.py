"""Start-up checks: the runtime database role must be one that row-level security binds.

Registered as database checks, so they run for `check --database default`, for `migrate` and,
through `require_safe_database()`, when the web server, a worker or beat starts. The model check
on references between tenant tables (tenants.foreign_keys) needs no database and runs always.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.utils import OperationalError

from tenants import accounts_seal, client_ip, foreign_keys, rls, seal

RUNTIME_ALIAS = "default"


def database_posture_errors(connection) -> list[checks.CheckMessage]:
    """Return errors for a runtime role that RLS would not bind, or tables it does not guard."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        role, is_superuser, bypasses_rls = cursor.fetchone()
    errors: list[checks.CheckMessage] = []
    if is_superuser:
        errors.append(
            checks.Error(
                f"The application connects as {role!r}, a superuser: row-level security does not "
                "apply to it.",
                hint="Point DATABASE_URL at the application role (see docs/operations.md).",
                id="tenants.E001",
            )
        )
    if bypasses_rls:
        errors.append(
            checks.Error(
                f"The application role {role!r} has BYPASSRLS.",
                hint=f"ALTER ROLE {role} NOBYPASSRLS;",
                id="tenants.E002",
            )
        )
    errors.extend(_seal_posture_errors(connection, role))
    errors.extend(_account_write_errors(connection, role))
    tables = rls.tenant_tables_status(connection)
    owned = [t.table for t in tables if t.exists and t.owner == role]
    if owned:
        errors.append(
            checks.Error(
                f"The application role {role!r} owns tenant tables: {', '.join(owned)}.",
                hint="Run migrations as the owner role (DATABASE_OWNER_URL), not the app role.",
                id="tenants.E003",
            )
        )
    unguarded = [t.table for t in tables if t.exists and not t.ok]
    if unguarded:
        errors.append(
            checks.Error(
                "Tenant tables without enabled and forced RLS and policies: "
                f"{', '.join(unguarded)}.",
                hint="Run `python manage.py rls_audit` and migrate; declare RowLevelSecurity.",
                id="tenants.E004",
            )
        )
    return errors


def _seal_posture_errors(connection, role: str) -> list[checks.CheckMessage]:
    """The seal holds only if the runtime role can neither read its key nor skip it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_regprocedure('public.metis_sealed_tenant()') IS NOT NULL, "
            "EXISTS (SELECT FROM pg_namespace WHERE nspname = %s "
            "        AND has_schema_privilege(oid, 'USAGE')), "
            "pg_has_role(current_user, %s, 'MEMBER'), "
            "has_database_privilege(current_database(), 'TEMPORARY')",
            [seal.PRIVATE_SCHEMA, seal.ALL_TENANTS_READER],
        )
        has_seal, reads_key_schema, reads_every_tenant, makes_temp_tables = cursor.fetchone()
    problems = {
        "tenants.E009": (not has_seal, "metis_sealed_tenant() is missing: run migrate."),
        "tenants.E010": (
            reads_key_schema,
            f"The application role {role!r} may use schema {seal.PRIVATE_SCHEMA}, where the "
            "tenant seal key lives.",
        ),
        "tenants.E011": (
            reads_every_tenant,
            f"The application role {role!r} is a member of {seal.ALL_TENANTS_READER}: it could "
            "read every tenant's rows.",
        ),
        "tenants.E012": (
            makes_temp_tables,
            f"The application role {role!r} may create temporary tables, which would shadow "
            "real ones for the next user of a pooled connection.",
        ),
    }
    hint = "Run `python manage.py db_roles` (or its SQL in docs/operations.md), then migrate."
    return [
        checks.Error(message, hint=hint, id=check_id)
        for check_id, (failed, message) in problems.items()
        if failed
    ]


def _account_write_errors(connection, role: str) -> list[checks.CheckMessage]:
    """Staff-account tables must refuse unsealed writes, and the runtime role must not be able to
    switch that off (only a table's owner may disable or drop its triggers)."""
    guards = accounts_seal.table_guards(connection)
    errors: list[checks.CheckMessage] = []
    unguarded = [guard.table for guard in guards if not guard.guarded]
    if unguarded:
        errors.append(
            checks.Error(
                "Staff-account tables accept writes without the accounts seal: "
                f"{', '.join(unguarded)} (trigger {accounts_seal.TRIGGER} missing or disabled).",
                hint="Run migrate (the tenants migration accounts_write_seal adds the triggers); "
                "a table added since needs a migration of its own (tenants/accounts_seal.py).",
                id="tenants.E014",
            )
        )
    alterable = [guard.table for guard in guards if guard.alterable]
    if alterable:
        errors.append(
            checks.Error(
                f"The application role {role!r} owns staff-account tables (or may act as their "
                f"owner): {', '.join(alterable)}. It could disable the triggers that guard them.",
                hint="Run migrations as the owner role (DATABASE_OWNER_URL), not the app role.",
                id="tenants.E015",
            )
        )
    return errors


@checks.register(checks.Tags.database)
def check_runtime_database(databases=None, **kwargs) -> list[checks.CheckMessage]:
    if not databases or RUNTIME_ALIAS not in databases:
        return []
    try:
        return database_posture_errors(connections[RUNTIME_ALIAS])
    except OperationalError as exc:
        return [
            checks.Error(
                f"Cannot connect to the database as the runtime role: {exc}",
                id="tenants.E005",
            )
        ]


@checks.register(checks.Tags.models)
def check_tenant_references(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Every reference between tenant-owned models must be a composite, tenant-scoped key."""
    configs = app_configs or apps.get_app_configs()
    return list(foreign_keys.tenant_reference_errors(m for c in configs for m in c.get_models()))


@checks.register(checks.Tags.security)
def check_trusted_proxies(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """TRUSTED_PROXIES must parse: a typo would otherwise surface on the first request."""
    try:
        client_ip.trusted_networks(tuple(settings.TRUSTED_PROXIES))
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="tenants.E013")]
    return []


def require_safe_database() -> None:
    """Run the database checks on the runtime role; raise SystemCheckError on any error."""
    import io

    from django.core.management import call_command

    try:
        call_command("check", databases=[RUNTIME_ALIAS], fail_level="ERROR", stdout=io.StringIO())
    finally:
        # A worker forks after this: give no pooled connection to its children.
        connection = connections[RUNTIME_ALIAS]
        connection.close()
        connection.close_pool()  # type: ignore[attr-defined]  # PostgreSQL's wrapper has it
