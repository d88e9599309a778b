import sys

from django.core.management.base import BaseCommand, CommandError

from analytics import services
from tenants import db
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Deliver pending analytics events from the outbox to ClickHouse now (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="subdomain or id of one tenant (default: all)")

    def handle(self, *args, tenant=None, **options):
        tenants = Tenant.objects.order_by("name")
        if tenant:
            try:
                tenants = tenants.filter(pk=db.parse_tenant_id(tenant))
            except db.TenantContextError:
                tenants = tenants.filter(subdomain=tenant)
            if not tenants:
                raise CommandError(f"no tenant {tenant!r}")
        total = services.DrainResult()
        for index, each in enumerate(tenants, start=1):
            result = services.outbox_drain_tenant(tenant_id=each.pk)
            total.add(result)
            print(f"[{index}/{len(tenants)}] {each.subdomain}: {result.sent} sent", file=sys.stderr)
            if result.unavailable:
                break
        self.stdout.write(f"Delivered {total.sent} events, set aside {total.rejected}.")
        if total.unavailable:
            self.stderr.write(f"ClickHouse unavailable, the rest waits: {total.unavailable}")
