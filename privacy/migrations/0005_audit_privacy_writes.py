"""Writes to retention rules, subject records, legal holds and erasure requests join the audit
log, in the same transaction, by the audit app's row trigger (audit/schema.py)."""

from django.db import migrations

from audit import schema

WATCHED = (
    ("privacy_retention_rules", "", "retention_rule", schema.ALL_WRITES, ""),
    ("privacy_subject_records", "tenant_id", "subject_record", schema.ALL_WRITES, ""),
    ("privacy_document_holds", "tenant_id", "document_legal_hold", schema.ALL_WRITES, ""),
    ("privacy_erasure_requests", "tenant_id", "erasure_request", schema.ALL_WRITES, ""),
)


class Migration(migrations.Migration):
    dependencies = [
        ("privacy", "0004_export_erased_status"),
        ("audit", "0002_schedule_audit_jobs"),
    ]

    operations = [
        migrations.RunSQL(
            "\n".join(schema.watch_sql(*table) for table in WATCHED),
            "\n".join(schema.unwatch_sql(table[0]) for table in WATCHED),
        )
    ]
