"""The tenant seal: its private key table, the verifying function, and the key itself."""

from django.db import migrations

from tenants import seal


def require_reader_role(apps, schema_editor):
    # The new policies name this role; only an administrator can create it (db_roles).
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [seal.ALL_TENANTS_READER])
        if cursor.fetchone() is None:
            raise RuntimeError(
                f"role {seal.ALL_TENANTS_READER} does not exist: run `python manage.py db_roles` "
                "(or its SQL in docs/operations.md) before migrating"
            )


def install_key(apps, schema_editor):
    seal.seal_key_install(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0003_users_tenant_key")]

    operations = [
        migrations.RunPython(require_reader_role, migrations.RunPython.noop),
        migrations.RunSQL(seal.CREATE_SQL, seal.DROP_SQL),
        migrations.RunPython(install_key, migrations.RunPython.noop),
    ]
