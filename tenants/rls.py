"""Row-level security as a model constraint, so `makemigrations` writes the policies.

Declaring `RowLevelSecurity(sealed=True)` in a model's `Meta.constraints` (every
`TenantOwnedModel` inherits one) makes the migration enable and force RLS on the table and
create its policies:

- `tenant_isolation`: rows whose `tenant_id` is the tenant a valid seal names
  (`metis_sealed_tenant()`, see tenants/seal.py), for reads (USING) and writes (WITH CHECK).
  No seal means no rows; a forged or replayed seal is an error.
- `staff_read_all_tenants`: SELECT only, for the `metis_read_all_tenants` role (the staff read
  connection), never for the runtime role.

`sealed=False` is the first design, kept only so old migrations replay as they ran: policies that
trusted the `app.current_tenant` and `app.all_tenants` settings, which any SQL could change.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from tenants.seal import ALL_TENANTS_READER

# Scalar subqueries, so PostgreSQL evaluates each once per query (an InitPlan), not once per row:
# bench/rls_overhead.py measured the per-row form at 1.4x on a 10,000-row tenant scan.
SEALED_TENANT_SQL = "(SELECT metis_sealed_tenant())"
CURRENT_TENANT_SQL = "(SELECT NULLIF(current_setting('app.current_tenant', true), '')::uuid)"
ALL_TENANTS_SQL = "(SELECT coalesce(current_setting('app.all_tenants', true), '') = 'on')"
POLICY_NAMES = ("tenant_isolation", "staff_read_all_tenants")


def enable_sql(table: str, column: str = "tenant_id", *, sealed: bool = True) -> str:
    """Return the DDL that enables and forces RLS on `table` with the tenant policies."""
    match = f"{column} = {SEALED_TENANT_SQL if sealed else CURRENT_TENANT_SQL}"
    staff = f"TO {ALL_TENANTS_READER} USING (true)" if sealed else f"USING ({ALL_TENANTS_SQL})"
    return (
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY; '
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY; '
        f'CREATE POLICY tenant_isolation ON "{table}" USING ({match}) WITH CHECK ({match}); '
        f'CREATE POLICY staff_read_all_tenants ON "{table}" FOR SELECT {staff}'
    )


def disable_sql(table: str) -> str:
    """Return the DDL that removes what `enable_sql` created."""
    drops = " ".join(f'DROP POLICY IF EXISTS {name} ON "{table}";' for name in POLICY_NAMES)
    return (
        f'{drops} ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY; '
        f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY'
    )


class RowLevelSecurity(models.BaseConstraint):
    """Enable and force tenant row-level security on the model's table."""

    def __init__(
        self, *, name: str, column: str = "tenant_id", sealed: bool = False, **kwargs
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.column = column
        self.sealed = sealed

    # Returns None, not SQL (the schema editor skips empty constraint SQL), hence the ignore.
    def constraint_sql(  # type: ignore[override]
        self, model, schema_editor: BaseDatabaseSchemaEditor
    ) -> None:
        # CREATE TABLE inlines constraint SQL; policies must follow the table, so defer them.
        schema_editor.deferred_sql.append(self.create_sql(model, schema_editor))
        return None

    def create_sql(self, model, schema_editor: BaseDatabaseSchemaEditor | None) -> str:
        return enable_sql(model._meta.db_table, self.column, sealed=self.sealed)

    def remove_sql(self, model, schema_editor: BaseDatabaseSchemaEditor | None) -> str:
        return disable_sql(model._meta.db_table)

    def validate(self, model, instance, exclude=None, using=None) -> None:
        """Nothing to validate in Python: PostgreSQL enforces the policy."""

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        if self.column != "tenant_id":
            kwargs["column"] = self.column
        if self.sealed:
            kwargs["sealed"] = True
        return path, args, kwargs

    def __eq__(self, other) -> bool:
        if isinstance(other, RowLevelSecurity):
            return (self.name, self.column, self.sealed) == (other.name, other.column, other.sealed)
        return super().__eq__(other)


# Tables with a tenant_id column that are deliberately not tenant-scoped, and why.
EXEMPT_TABLES = {
    "staff_tenant_access": "staff audit trail: staff choices across tenants, never tenant data",
    "backups_backuprun": "backup catalog: a system table; tenant_id only names a tenant export",
}


@dataclass(frozen=True)
class TableStatus:
    """The RLS posture of one table that holds tenant rows."""

    table: str
    exists: bool
    enabled: bool
    forced: bool
    policies: tuple[str, ...]
    owner: str

    @property
    def ok(self) -> bool:
        return (
            self.exists and self.enabled and self.forced and set(POLICY_NAMES) <= set(self.policies)
        )


_STATUS_SQL = """
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner),
       coalesce(array_agg(p.polname ORDER BY p.polname) FILTER (WHERE p.polname IS NOT NULL),
                '{}')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_policy p ON p.polrelid = c.oid
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
  -- A partition is reached through its parent, whose policies apply (audit_log's partitions
  -- keep no grants for the runtime role: audit/schema.py).
  AND NOT c.relispartition
  AND (c.relname = ANY(%s) OR EXISTS (
        SELECT 1 FROM pg_attribute a
        WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
GROUP BY c.oid, c.relname
ORDER BY c.relname
"""


def tenant_tables_status(connection) -> list[TableStatus]:
    """Return the RLS status of every tenant table: declared by a model or having tenant_id.

    Declared tables not yet created are listed with `exists=False`; exempt tables are left out.
    """
    declared = declared_tenant_tables()
    with connection.cursor() as cursor:
        cursor.execute(_STATUS_SQL, [sorted(declared)])
        rows = cursor.fetchall()
    found = {
        name: TableStatus(name, True, enabled, forced, tuple(policies), owner)
        for name, enabled, forced, owner, policies in rows
        if name not in EXEMPT_TABLES
    }
    for name in declared - found.keys():
        found[name] = TableStatus(name, False, False, False, (), "")
    return [found[name] for name in sorted(found)]


def declared_tenant_tables() -> set[str]:
    """Return the tables of models that declare a RowLevelSecurity constraint."""
    from django.apps import apps

    return {
        model._meta.db_table
        for model in apps.get_models()
        if any(isinstance(c, RowLevelSecurity) for c in model._meta.constraints)
    }
