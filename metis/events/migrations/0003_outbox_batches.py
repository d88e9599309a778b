"""Batches get a table of their own: the drain moves events out of the outbox into one batch row.

Rows a drain of the old kind had claimed and not yet marked sent (pending, with a
`batch_token`) become batches under the same token, so ClickHouse still drops a repeat of
one it took; then the outbox loses its claim columns. Reversible (batches go back to claimed
rows). The batch arrays are stored uncompressed (rows that live seconds). RLS is forced on
both tables and the owner has no BYPASSRLS: the move lifts FORCE for its own statements only,
inside this migration's transaction.
"""

import django.contrib.postgres.fields
import django.db.models.deletion
import tenants.rls
from django.db import migrations, models

BATCH_COLUMNS = (
    "token, tenant_id, claimed_at, attempts, last_error, size, oldest_at, "
    "event_ids, event_types, event_data, user_ids, staff_ids, occurred_ats"
)
CLAIMS_TO_BATCHES = f"""
    ALTER TABLE analytics_event_outbox NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE events_outbox_batch NO FORCE ROW LEVEL SECURITY;
    INSERT INTO events_outbox_batch ({BATCH_COLUMNS})
    SELECT batch_token, tenant_id, NULL, max(attempts), max(last_error), count(*),
        min(occurred_at), array_agg(id ORDER BY occurred_at, id),
        array_agg(event_type ORDER BY occurred_at, id), array_agg(data ORDER BY occurred_at, id),
        array_agg(user_id ORDER BY occurred_at, id), array_agg(staff_id ORDER BY occurred_at, id),
        array_agg(occurred_at ORDER BY occurred_at, id)
    FROM analytics_event_outbox WHERE status = 'pending' AND batch_token IS NOT NULL
    GROUP BY batch_token, tenant_id;
    DELETE FROM analytics_event_outbox WHERE status = 'pending' AND batch_token IS NOT NULL;
    SET CONSTRAINTS ALL IMMEDIATE;  -- deferred FK checks first: ALTER TABLE waits for none
    ALTER TABLE analytics_event_outbox FORCE ROW LEVEL SECURITY;
    ALTER TABLE events_outbox_batch FORCE ROW LEVEL SECURITY;
"""
# A batch row lives seconds: compressing its arrays (pglz) cost a third of the claim's time.
UNCOMPRESSED = "ALTER TABLE events_outbox_batch " + ", ".join(
    f"ALTER COLUMN {column} SET STORAGE EXTERNAL"
    for column in ("event_ids", "event_types", "event_data", "user_ids", "staff_ids", "occurred_ats")
)
BATCHES_TO_CLAIMS = """
    ALTER TABLE analytics_event_outbox NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE events_outbox_batch NO FORCE ROW LEVEL SECURITY;
    INSERT INTO analytics_event_outbox (id, tenant_id, event_type, data, user_id, staff_id,
        occurred_at, status, batch_token, claimed_at, attempts, last_error, sent_at)
    SELECT e.id, b.tenant_id, e.event_type, e.data, e.user_id, e.staff_id, e.occurred_at,
        'pending', b.token, NULL, b.attempts, b.last_error, NULL
    FROM events_outbox_batch b,
        unnest(b.event_ids, b.event_types, b.event_data, b.user_ids, b.staff_ids, b.occurred_ats)
        AS e(id, event_type, data, user_id, staff_id, occurred_at);
    DELETE FROM events_outbox_batch;
    SET CONSTRAINTS ALL IMMEDIATE;  -- deferred FK checks first: ALTER TABLE waits for none
    ALTER TABLE analytics_event_outbox FORCE ROW LEVEL SECURITY;
    ALTER TABLE events_outbox_batch FORCE ROW LEVEL SECURITY;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0002_seal_tenant_policies'),
        ('tenants', '0010_tenant_user_is_admin'),
    ]

    operations = [
        migrations.CreateModel(
            name='EventOutboxBatch',
            fields=[
                ('token', models.UUIDField(editable=False, primary_key=True, serialize=False)),
                ('claimed_at', models.DateTimeField(blank=True, null=True)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('last_error', models.TextField(blank=True)),
                ('size', models.PositiveIntegerField()),
                ('oldest_at', models.DateTimeField()),
                ('event_ids', django.contrib.postgres.fields.ArrayField(base_field=models.UUIDField(), size=None)),
                ('event_types', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=100), size=None)),
                ('event_data', django.contrib.postgres.fields.ArrayField(base_field=models.JSONField(), size=None)),
                ('user_ids', django.contrib.postgres.fields.ArrayField(base_field=models.UUIDField(null=True), size=None)),
                ('staff_ids', django.contrib.postgres.fields.ArrayField(base_field=models.IntegerField(null=True), size=None)),
                ('occurred_ats', django.contrib.postgres.fields.ArrayField(base_field=models.DateTimeField(), size=None)),
            ],
            options={
                'verbose_name': 'outbox batch',
                'db_table': 'events_outbox_batch',
            },
        ),
        migrations.AddField(
            model_name='eventoutboxbatch',
            name='tenant',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant'),
        ),
        migrations.AddIndex(
            model_name='eventoutboxbatch',
            index=models.Index(fields=['tenant', 'oldest_at'], name='outbox_batch_tenant_oldest'),
        ),
        migrations.AddConstraint(
            model_name='eventoutboxbatch',
            constraint=tenants.rls.RowLevelSecurity(name='events_eventoutboxbatch_rls', sealed=True),
        ),
        migrations.RunSQL(UNCOMPRESSED, migrations.RunSQL.noop),
        migrations.RunSQL(CLAIMS_TO_BATCHES, BATCHES_TO_CLAIMS),
        migrations.RemoveIndex(
            model_name='eventoutbox',
            name='outbox_pending_unclaimed',
        ),
        migrations.RemoveIndex(
            model_name='eventoutbox',
            name='outbox_pending_claimed',
        ),
        migrations.RemoveField(
            model_name='eventoutbox',
            name='batch_token',
        ),
        migrations.RemoveField(
            model_name='eventoutbox',
            name='claimed_at',
        ),
        migrations.AddIndex(
            model_name='eventoutbox',
            index=models.Index(condition=models.Q(('status', 'pending')), fields=['tenant', 'occurred_at'], name='outbox_pending'),
        ),
    ]
