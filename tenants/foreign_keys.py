"""Foreign keys that stay inside one tenant, declared as model constraints.

PostgreSQL checks foreign keys without row-level security. A plain `document_id REFERENCES
documents (id)` lets tenant A's row point at tenant B's document, and whether A's commit
succeeds tells A that B's id exists. So every reference between two tenant-owned tables is a
composite key instead:

    FOREIGN KEY (tenant_id, document_id) REFERENCES documents (tenant_id, id)

B's id then fails exactly as an id that exists nowhere does: same constraint, same message.
The Django ForeignKey stays for the ORM (joins, `on_delete` run in Python) with
`db_constraint=False`: a second, single-column constraint would fail under its own name for
B's id, and that name alone would tell A the id exists.

- `TenantKey` on the referenced model: UNIQUE (tenant_id, id), the key references point at.
- `TenantForeignKey(field=...)` on the referencing model: the composite key, DEFERRABLE
  INITIALLY DEFERRED like Django's own, so `makemigrations` writes it. Added to a table that
  holds rows, it stops the migration, naming the table and the count, if any row already
  points at another tenant's row; it deletes nothing.
- `tenant_reference_errors()` (checks tenants.E006-E008) fails on a reference between
  tenant-owned models that lacks either, so a new model cannot forget it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.core import checks
from django.db import DEFAULT_DB_ALIAS, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

TENANT_FIELD = "tenant"


class TenantKey(models.UniqueConstraint):
    """UNIQUE (tenant_id, id): the key a `TenantForeignKey` to this model points at."""

    def __init__(self, *, name: str, **kwargs) -> None:
        super().__init__(fields=(TENANT_FIELD, "id"), name=name, **kwargs)

    def validate(self, model, instance, exclude=None, using=DEFAULT_DB_ALIAS) -> None:
        """Nothing to validate: `id` alone is already unique."""

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        del kwargs["fields"]
        return path, args, kwargs


class TenantForeignKey(models.BaseConstraint):
    """Make the ForeignKey `field` point only at rows of the referencing row's own tenant."""

    def __init__(self, *, field: str, name: str, **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.field = field

    def _create_sql(self, model, schema_editor: BaseDatabaseSchemaEditor) -> str:
        field = model._meta.get_field(self.field)
        target = field.related_model
        quote = schema_editor.quote_name
        columns = f"{quote(model._meta.get_field(TENANT_FIELD).column)}, {quote(field.column)}"
        target_columns = (
            f"{quote(target._meta.get_field(TENANT_FIELD).column)}, "
            f"{quote(field.target_field.column)}"
        )
        return (
            f"ALTER TABLE {quote(model._meta.db_table)} ADD CONSTRAINT {quote(self.name)} "
            f"FOREIGN KEY ({columns}) REFERENCES {quote(target._meta.db_table)} ({target_columns}) "
            "DEFERRABLE INITIALLY DEFERRED"
        )

    # Returns None, not SQL (the schema editor skips empty constraint SQL), hence the ignore.
    def constraint_sql(  # type: ignore[override]
        self, model, schema_editor: BaseDatabaseSchemaEditor
    ) -> None:
        # A new table: no rows to check. Deferred to the end of the migration, as Django defers
        # its own foreign keys, so the target's table and TenantKey exist by then.
        schema_editor.deferred_sql.append(self._create_sql(model, schema_editor))

    def create_sql(  # type: ignore[override]
        self, model, schema_editor: BaseDatabaseSchemaEditor
    ) -> str | None:
        """Add the key to a table that may hold rows; refuse rows that cross tenants.

        PostgreSQL validates the existing rows as the owner, whom forced RLS binds too: with no
        seal it would see no rows and accept any. So, inside the migration's transaction, the
        owner lifts the forcing off both tables, counts the crossing rows, adds the key, and
        forces RLS again; on any error the transaction puts everything back.
        """
        sql = self._create_sql(model, schema_editor)
        if schema_editor.collect_sql:
            return sql  # sqlmigrate: show the statement, read nothing
        with _owner_sees_every_row(schema_editor, model, self.field):
            count = cross_tenant_reference_count(schema_editor.connection, model, self.field)
            if count:
                column = model._meta.get_field(self.field).column
                raise CrossTenantReferenceError(
                    f"{model._meta.db_table}.{column}: {count} row(s) reference another "
                    f"tenant's row, so {self.name} cannot be added. Nothing was changed or "
                    "deleted: correct or remove those rows, then migrate again."
                )
            schema_editor.execute(sql, params=None)
        return None  # executed above, with every row visible

    def remove_sql(  # type: ignore[override]
        self, model, schema_editor: BaseDatabaseSchemaEditor
    ) -> str:
        quote = schema_editor.quote_name
        return f"ALTER TABLE {quote(model._meta.db_table)} DROP CONSTRAINT {quote(self.name)}"

    def validate(self, model, instance, exclude=None, using=DEFAULT_DB_ALIAS) -> None:
        """Nothing more to validate in Python: the ForeignKey field already looks the row up,
        under RLS, where another tenant's row does not exist. PostgreSQL enforces the rest."""

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        kwargs["field"] = self.field
        return path, args, kwargs

    def __eq__(self, other) -> bool:
        if isinstance(other, TenantForeignKey):
            return self.name == other.name and self.field == other.field
        return super().__eq__(other)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}: field={self.field!r} name={self.name!r}>"


@contextmanager
def _owner_sees_every_row(schema_editor, model, field_name: str) -> Iterator[None]:
    if not schema_editor.connection.in_atomic_block:
        raise RuntimeError("a TenantForeignKey is added inside the migration's transaction")
    target = model._meta.get_field(field_name).related_model
    tables = [schema_editor.quote_name(m._meta.db_table) for m in (model, target)]
    for table in tables:
        schema_editor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY", params=None)
    yield
    for table in tables:
        schema_editor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY", params=None)


def tenant_references(model: type[models.Model]) -> list[models.ForeignKey]:
    """Return `model`'s foreign keys (one-to-one included) to another tenant-owned model."""
    from tenants.models import TenantOwnedModel  # tenants.models imports this module

    if not issubclass(model, TenantOwnedModel):
        return []
    return [
        field
        for field in model._meta.concrete_fields
        if isinstance(field, models.ForeignKey)
        and not field.remote_field.parent_link
        and isinstance(field.related_model, type)
        and issubclass(field.related_model, TenantOwnedModel)
    ]


def tenant_reference_errors(all_models: Iterable[type[models.Model]]) -> list[checks.Error]:
    """Return an error for each reference between tenant-owned models that is not composite."""
    errors = []
    unkeyed: dict[type[models.Model], str] = {}  # referenced models without a TenantKey
    for model in all_models:
        declared = {c.field for c in model._meta.constraints if isinstance(c, TenantForeignKey)}
        for field in tenant_references(model):
            where = f"{model._meta.label}.{field.name}"
            target = field.related_model
            if field.name not in declared:
                errors.append(
                    checks.Error(
                        f"{where} references tenant-owned {target._meta.label} without a "
                        "TenantForeignKey: it could point at another tenant's row.",
                        hint=f"Add tenants.foreign_keys.TenantForeignKey(field={field.name!r}, "
                        f"name='{model._meta.db_table}_{field.name}_same_tenant') to "
                        "Meta.constraints.",
                        obj=model,
                        id="tenants.E006",
                    )
                )
            if field.db_constraint:  # type: ignore[attr-defined]  # missing from django-stubs
                errors.append(
                    checks.Error(
                        f"{where} keeps its single-column foreign key constraint: for another "
                        "tenant's id it fails under a different name than for a missing id.",
                        hint="Set db_constraint=False on the field; TenantForeignKey is the "
                        "database constraint.",
                        obj=model,
                        id="tenants.E007",
                    )
                )
            if not any(isinstance(c, TenantKey) for c in target._meta.constraints):
                unkeyed.setdefault(target, where)
    for target, where in unkeyed.items():
        errors.append(
            checks.Error(
                f"{target._meta.label} is referenced by {where} but declares no TenantKey, "
                "the UNIQUE (tenant_id, id) a composite key points at.",
                hint=f"Add tenants.foreign_keys.TenantKey(name='{target._meta.db_table}"
                "_tenant_id_key') to Meta.constraints.",
                obj=target,
                id="tenants.E008",
            )
        )
    return errors


class CrossTenantReferenceError(Exception):
    """Existing rows reference another tenant's rows; a migration will not guess a fix."""


def cross_tenant_reference_count(connection, model, field_name: str) -> int:
    """Count `model`'s rows whose `field_name` is not a row of their own tenant.

    Run it where every tenant's rows are visible: RLS binds the owner role too.
    """
    field = model._meta.get_field(field_name)
    target = field.related_model
    quote = connection.ops.quote_name
    tenant = quote(model._meta.get_field(TENANT_FIELD).column)
    target_tenant = quote(target._meta.get_field(TENANT_FIELD).column)
    column = quote(field.column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {quote(model._meta.db_table)} AS r "
            f"WHERE r.{column} IS NOT NULL AND NOT EXISTS ("
            f"SELECT 1 FROM {quote(target._meta.db_table)} AS t "
            f"WHERE t.{quote(field.target_field.column)} = r.{column} "
            f"AND t.{target_tenant} = r.{tenant})"
        )
        return cursor.fetchone()[0]
