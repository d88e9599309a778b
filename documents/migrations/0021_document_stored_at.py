"""`documents.stored_at`, when the current version was stored, and the tiering plan's index.

The plan aged each document by its newest version, a subquery per row (36 s for a tenant with
a million documents); the row now carries that time, kept by a trigger on new versions and
backfilled from the versions (documents/stored_at_sql.py). The index is built in the same
transaction, not concurrently: the backfill rewrites every row under a lock anyway.
"""

import django.db.models.functions.datetime
from django.conf import settings
from django.db import migrations, models

from documents import stored_at_sql


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0020_document_usage"),
        ("tenants", "0010_tenant_user_is_admin"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="stored_at",
            field=models.DateTimeField(
                db_default=django.db.models.functions.datetime.Now(), editable=False
            ),
        ),
        migrations.RunSQL(stored_at_sql.BACKFILL, migrations.RunSQL.noop),
        migrations.RunSQL(stored_at_sql.CREATE_TRIGGER, stored_at_sql.DROP_TRIGGER),
        migrations.AddIndex(
            model_name="document",
            index=models.Index(
                condition=models.Q(
                    ("deleted_at__isnull", True),
                    ("storage_class__in", ["STANDARD", "STANDARD_IA"]),
                ),
                fields=["tenant", "stored_at"],
                include=("storage_class", "tiering_started_at"),
                name="documents_tier_due",
            ),
        ),
    ]
