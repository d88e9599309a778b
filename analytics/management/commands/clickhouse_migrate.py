from django.core.management.base import BaseCommand

from analytics import clickhouse, schema


class Command(BaseCommand):
    help = "Apply the ClickHouse migrations in analytics/clickhouse_migrations (idempotent)."

    def handle(self, *args, **options):
        applied = schema.migrate(log=self.stdout.write)
        where = clickhouse.database_name()
        if applied:
            self.stdout.write(self.style.SUCCESS(f"ClickHouse {where}: applied {len(applied)}."))
        else:
            self.stdout.write(f"ClickHouse {where}: no migrations to apply.")
