"""The tenant's newest-first index gains `id`: keyset pages seek to (created_at, id) directly;
a document's newest version is one index-only probe for the tiering plan.

Built and dropped concurrently, so a live table of millions of rows keeps taking writes.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("documents", "0016_document_etag"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="document",
            index=models.Index(
                fields=["tenant", "-created_at", "-id"], name="documents_tenant_created_id"
            ),
        ),
        RemoveIndexConcurrently(model_name="document", name="documents_tenant_created"),
        AddIndexConcurrently(
            model_name="documentversion",
            index=models.Index(
                fields=["document", "-created_at"],
                include=["tenant"],
                name="document_versions_newest",
            ),
        ),
    ]
