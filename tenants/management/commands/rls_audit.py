from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from tenants import rls


class Command(BaseCommand):
    help = "List every tenant table with its RLS state; exit non-zero if any is unguarded."
    requires_system_checks = []  # this command is the diagnosis of what the checks refuse

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default")

    def handle(self, *args, database, **options):
        tables = rls.tenant_tables_status(connections[database])
        width = max([len(t.table) for t in tables] + [5])
        self.stdout.write(f"{'TABLE':<{width}}  EXISTS  RLS  FORCED  POLICIES  STATUS")
        for t in tables:
            policies = ",".join(t.policies) or "-"
            self.stdout.write(
                f"{t.table:<{width}}  {_yn(t.exists):<6}  {_yn(t.enabled):<3}  {_yn(t.forced):<6}"
                f"  {policies}  {'ok' if t.ok else 'MISSING'}"
            )
        for table, why in rls.EXEMPT_TABLES.items():
            self.stdout.write(f"{table:<{width}}  exempt: {why}")
        bad = [t.table for t in tables if not t.ok]
        if bad:
            raise CommandError(f"{len(bad)} tenant table(s) without full RLS: {', '.join(bad)}")
        self.stdout.write(self.style.SUCCESS(f"{len(tables)} tenant table(s), all guarded."))


def _yn(value: bool) -> str:
    return "yes" if value else "no"
