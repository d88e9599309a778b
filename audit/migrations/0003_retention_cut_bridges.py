# A cut is the longest dropped run of a chain's seqs; rows dropped past it (their month went,
# a row before them stamped in the next month stayed) are kept as {seq: hash} to cross.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_schedule_audit_jobs")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE audit_retention_cuts ADD COLUMN bridges jsonb NOT NULL DEFAULT '{}'",
            "ALTER TABLE audit_retention_cuts DROP COLUMN bridges",
        )
    ]
