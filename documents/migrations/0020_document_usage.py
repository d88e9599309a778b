"""Per-tenant storage usage kept by triggers (documents/usage_sql.py), backfilled from the rows:
the admin's storage summary reads it instead of summing every document and version."""

import django.db.models.deletion

from documents import usage_sql
import tenants.rls
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0019_schedule_replication_sweep"),
        ("tenants", "0010_tenant_user_is_admin"),
    ]

    operations = [
        migrations.CreateModel(
            name="DocumentUsage",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "storage_class",
                    models.CharField(
                        choices=[
                            ("STANDARD", "Standard"),
                            ("STANDARD_IA", "Infrequent access"),
                            ("GLACIER", "Glacier"),
                        ],
                        max_length=20,
                    ),
                ),
                ("documents", models.BigIntegerField(default=0)),
                ("current_bytes", models.BigIntegerField(default=0)),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "db_table": "document_usage",
                "constraints": [
                    tenants.rls.RowLevelSecurity(name="documents_documentusage_rls", sealed=True),
                    models.UniqueConstraint(
                        fields=("tenant", "storage_class"), name="document_usage_tenant_class_key"
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="VersionUsage",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("versions", models.BigIntegerField(default=0)),
                ("stored_bytes", models.BigIntegerField(default=0)),
                (
                    "tenant",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "db_table": "document_version_usage",
                "constraints": [
                    tenants.rls.RowLevelSecurity(name="documents_versionusage_rls", sealed=True)
                ],
            },
        ),
        migrations.RunSQL(usage_sql.CREATE_TRIGGERS, usage_sql.DROP_TRIGGERS),
        migrations.RunSQL(usage_sql.BACKFILL, migrations.RunSQL.noop),
    ]
