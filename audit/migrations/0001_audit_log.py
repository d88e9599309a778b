from django.db import migrations, models
from django.utils import timezone

from audit import schema


def partitions_ahead(apps, schema_editor):
    today = timezone.now().date().replace(day=1)
    with schema_editor.connection.cursor() as cursor:
        for months in range(4):
            year, month = divmod(today.month - 1 + months, 12)
            cursor.execute(
                "SELECT metis_audit_partition_ensure(%s)",
                [today.replace(year=today.year + year, month=month + 1)],
            )


def watch_all():
    return "\n".join(schema.watch_sql(*table) for table in schema.WATCHED_TABLES)


def unwatch_all():
    return "\n".join(schema.unwatch_sql(table[0]) for table in schema.WATCHED_TABLES)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("tenants", "0009_accounts_write_seal"),
        ("documents", "0012_seal_tenant_policies"),
        ("analytics", "0012_move_outbox_to_events"),
        ("backups", "0003_schedule_analytics_backup"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    schema.TABLE_SQL
                    + schema.CANONICAL_SQL
                    + schema.CHAIN_SQL
                    + schema.APPEND_ONLY_SQL
                    + schema.PARTITION_SQL
                    + schema.ROW_CHANGE_SQL
                    + schema.RLS_SQL
                    + schema.GRANTS_SQL,
                    schema.DROP_SQL,
                ),
                migrations.RunPython(partitions_ahead, migrations.RunPython.noop),
                migrations.RunSQL(watch_all(), unwatch_all()),
            ],
            state_operations=[
                migrations.CreateModel(
                    name="AuditEntry",
                    fields=[("id", models.BigIntegerField(primary_key=True))],
                    options={
                        "managed": False,
                        "db_table": "audit_log",
                        "ordering": ["-created_at", "-id"],
                        "verbose_name_plural": "audit entries",
                    },
                )
            ],
        ),
    ]
