"""The event outbox moved to metis.events: drop it from analytics' state only.

No database operation: the table, its rows, indexes and RLS policies are kept, now owned in
Django's state by events 0001_initial.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0011_schedule_duckdb_jobs"),
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[migrations.DeleteModel(name="EventOutbox")],
        ),
    ]
