from django.db import migrations


def delete_sessions(apps, schema_editor):
    # Rows written before tenants.sessions are keyed by the cookie value itself, the bearer secret
    # this backend keeps out of SQL. They cannot be rehashed in place (the new backend never
    # looks a plain key up), so they are deleted: everyone signs in again once. Their copies in
    # Redis sit under Django's own cache prefix, which the new backend never reads; they expire
    # within the 24-hour session age.
    apps.get_model("sessions", "Session").objects.using(schema_editor.connection.alias).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0005_seal_tenant_policies"),
        ("sessions", "0001_initial"),
    ]

    # Nothing to bring back: the deleted sessions are gone either way.
    operations = [migrations.RunPython(delete_sessions, migrations.RunPython.noop, elidable=True)]
