"""Each stored version records its copy in the disaster-recovery bucket (documents/replication.py).

Existing versions start pending: once DOCUMENTS_DR_BUCKET is set, the sweep copies them. The
index of pending versions is built concurrently, so a live table keeps taking writes.
"""

import django.db.models.functions.datetime
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("documents", "0017_documents_scale_indexes"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="documentversion",
            name="dr_pending_since",
            field=models.DateTimeField(
                db_default=django.db.models.functions.datetime.Now(), editable=False
            ),
        ),
        migrations.AddField(
            model_name="documentversion",
            name="dr_replicated_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="documentversion",
            name="dr_source_version_id",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.AddField(
            model_name="documentversion",
            name="dr_version_id",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        AddIndexConcurrently(
            model_name="documentversion",
            index=models.Index(
                condition=models.Q(("dr_replicated_at__isnull", True)),
                fields=["dr_pending_since"],
                include=("tenant",),
                name="document_versions_dr_pending",
            ),
        ),
    ]
