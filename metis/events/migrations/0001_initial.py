"""Take over the event outbox from analytics, in Django's state only.

The table `analytics_event_outbox`, its rows, indexes and RLS policies stay exactly as
analytics/migrations/0001_initial.py created them: no database operation here (nor in
analytics 0012, which drops the model from analytics' state). The content type moves with the
model, so its permissions and admin log entries follow.
"""

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.db import migrations, models

import tenants.rls


def content_type_move(apps, schema_editor, *, old="analytics", new="events"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label=new, model="eventoutbox").exists():
        ContentType.objects.using(db).filter(app_label=old, model="eventoutbox").update(
            app_label=new
        )


def content_type_move_back(apps, schema_editor):
    content_type_move(apps, schema_editor, old="events", new="analytics")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("tenants", "0002_schedule_clear_expired_sessions"),
        ("contenttypes", "0002_remove_content_type_name"),
        # The table exists (and the model is still analytics') before this state takes it.
        ("analytics", "0011_schedule_duckdb_jobs"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="EventOutbox",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ("event_type", models.CharField(max_length=100)),
                        ("data", models.JSONField(blank=True, default=dict)),
                        ("user_id", models.UUIDField(blank=True, null=True)),
                        ("staff_id", models.IntegerField(blank=True, null=True)),
                        ("occurred_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("status", models.CharField(choices=[("pending", "Pending"), ("sent", "Delivered to ClickHouse"), ("rejected", "Rejected by ClickHouse (set aside)")], default="pending", max_length=10)),
                        ("batch_token", models.UUIDField(blank=True, null=True)),
                        ("claimed_at", models.DateTimeField(blank=True, null=True)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("last_error", models.TextField(blank=True)),
                        ("sent_at", models.DateTimeField(blank=True, null=True)),
                        ("tenant", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="tenants.tenant")),
                    ],
                    options={
                        "verbose_name": "outbox event",
                        "db_table": "analytics_event_outbox",
                        "ordering": ["occurred_at"],
                        "indexes": [models.Index(condition=models.Q(("batch_token__isnull", True), ("status", "pending")), fields=["tenant", "occurred_at"], name="outbox_pending_unclaimed"), models.Index(condition=models.Q(("batch_token__isnull", False), ("status", "pending")), fields=["tenant", "batch_token"], name="outbox_pending_claimed"), models.Index(fields=["tenant", "status", "sent_at"], name="outbox_tenant_status")],
                        # Only the name differs from analytics' (the app label): the policies
                        # in the database are named by the constraint class, not by this.
                        "constraints": [tenants.rls.RowLevelSecurity(name="events_eventoutbox_rls")],
                    },
                ),
            ],
        ),
        migrations.RunPython(content_type_move, content_type_move_back),
    ]
