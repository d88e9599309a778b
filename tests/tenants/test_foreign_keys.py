"""References between tenant tables are composite (tenant_id, fk) keys, in the models and in the
migrated database; the check refuses a model that forgets one."""

from django.apps import apps
from django.db import connection, models
from django.test.utils import isolate_apps

from tenants import foreign_keys
from tenants.foreign_keys import TenantForeignKey, TenantKey
from tenants.models import TenantOwnedModel

# Every foreign key of the migrated database whose two tables both have a tenant_id column,
# with its columns on both sides in key order.
FOREIGN_KEYS_BETWEEN_TENANT_TABLES = """
WITH tenant_tables AS (
    SELECT attrelid FROM pg_attribute WHERE attname = 'tenant_id' AND NOT attisdropped
)
SELECT c.conname, c.conrelid::regclass::text, c.confrelid::regclass::text,
       ARRAY(SELECT a.attname::text
             FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, position)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
             ORDER BY k.position),
       ARRAY(SELECT a.attname::text
             FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, position)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
             ORDER BY k.position),
       c.condeferrable, c.condeferred
FROM pg_constraint c
WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
  AND c.conrelid IN (SELECT attrelid FROM tenant_tables)
  AND c.confrelid IN (SELECT attrelid FROM tenant_tables)
ORDER BY 2, 1
"""


def foreign_keys_between_tenant_tables() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(FOREIGN_KEYS_BETWEEN_TENANT_TABLES)
        return cursor.fetchall()


def without_tenant(columns: list[str]) -> list[str]:
    return [column for column in columns if column != "tenant_id"]


def test_every_foreign_key_between_tenant_tables_includes_the_tenant_on_both_sides(db):
    found = foreign_keys_between_tenant_tables()
    assert found, "no foreign key between tenant tables: the query or the schema changed"
    single_column = [name for name, _, _, columns, _, _, _ in found if len(columns) == 1]
    assert single_column == []
    for name, table, target, columns, target_columns, deferrable, deferred in found:
        where = f"{table}.{name} -> {target}"
        assert "tenant_id" in columns and "tenant_id" in target_columns, where
        # Matched with each other, not with some other column of the key.
        assert columns.index("tenant_id") == target_columns.index("tenant_id"), where
        assert without_tenant(target_columns) == ["id"], where
        assert (deferrable, deferred) == (True, True), where


def test_every_reference_the_models_declare_is_in_the_database(db):
    declared = {
        (model._meta.db_table, field.column)
        for model in apps.get_models()
        for field in foreign_keys.tenant_references(model)
    }
    in_database = {
        (table, *without_tenant(columns))
        for _, table, _, columns, _, _, _ in foreign_keys_between_tenant_tables()
    }
    assert declared == in_database
    assert ("document_access_log", "document_id") in declared  # the list is the real one


def test_the_project_models_pass_the_reference_check():
    assert foreign_keys.tenant_reference_errors(apps.get_models()) == []


@isolate_apps("tenants")
def test_check_refuses_a_plain_foreign_key_between_tenant_models():
    class Parent(TenantOwnedModel):
        class Meta:
            app_label = "tenants"

    class Child(TenantOwnedModel):
        parent = models.ForeignKey(Parent, on_delete=models.CASCADE)

        class Meta:
            app_label = "tenants"

    errors = foreign_keys.tenant_reference_errors([Parent, Child])
    assert sorted(error.id for error in errors) == ["tenants.E006", "tenants.E007", "tenants.E008"]
    assert all("Child.parent" in error.msg for error in errors)


@isolate_apps("tenants")
def test_check_accepts_a_composite_reference():
    class Parent(TenantOwnedModel):
        class Meta:
            app_label = "tenants"
            constraints = [TenantKey(name="parent_tenant_id_key")]

    class Child(TenantOwnedModel):
        parent = models.ForeignKey(Parent, on_delete=models.CASCADE, db_constraint=False)

        class Meta:
            app_label = "tenants"
            constraints = [TenantForeignKey(field="parent", name="child_parent_same_tenant")]

    assert foreign_keys.tenant_reference_errors([Parent, Child]) == []


def test_constraints_deconstruct_to_themselves():
    for constraint in (
        TenantKey(name="x_tenant_id_key"),
        TenantForeignKey(field="document", name="x_document_same_tenant"),
    ):
        path, args, kwargs = constraint.deconstruct()
        assert path.startswith("tenants.foreign_keys.")
        assert type(constraint)(*args, **kwargs) == constraint
