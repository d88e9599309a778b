"""Vacuum the outbox after a fixed number of dead rows, not a fraction of the table.

Every delivered event leaves a dead outbox row, and the table is nearly empty between drains,
so the default threshold (20% of the live rows) would let dead rows pile up under the claims'
index scans (bench/analytics_outbox_throughput.py, docs/benchmarks.md: 81,000 to 17,000
events/s over five unvacuumed rounds). The batch rows are few and short-lived; the same rule.
"""

from django.db import migrations

TABLES = ("analytics_event_outbox", "events_outbox_batch")
OPTIONS = "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000"


class Migration(migrations.Migration):
    dependencies = [("events", "0003_outbox_batches")]

    operations = [
        migrations.RunSQL(
            [f"ALTER TABLE {table} SET ({OPTIONS})" for table in TABLES],
            [
                f"ALTER TABLE {table} RESET "
                "(autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)"
                for table in TABLES
            ],
        ),
    ]
