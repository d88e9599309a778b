"""Seed a few weeks of plausible event history for the demo tenants (idempotent)."""

import random
import sys
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand
from django.db import connection

from analytics import clickhouse, schema, services
from metis.events.models import EventOutbox
from tenants import db
from tenants import services as tenant_services
from tenants.management.commands.seed_demo import DEMO_PASSWORD, DEMO_TENANTS
from tenants.models import Tenant, TenantUser

TEAM = ["maria", "omar", "priya", "tom", "lena", "kofi"]
DOCUMENT_TYPES = {"pan": 5, "aadhar": 4, "bank-statement": 3, "image": 2, "report": 1}
# Relative activity by hour of day (UTC): quiet nights, a working-day hump.
HOURLY = [1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 15, 14, 12, 13, 14, 13, 11, 8, 5, 3, 2, 2, 1, 1]


class Command(BaseCommand):
    help = "Seed the demo tenants' analytics history (default 21 days) and deliver it."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=21)
        parser.add_argument("--seed", type=int, default=7, help="random seed (same data each run)")

    def handle(self, *args, days, seed, **options):
        schema.migrate()
        rng = random.Random(seed)
        for subdomain, *_ in DEMO_TENANTS:
            tenant = Tenant.objects.filter(subdomain=subdomain).first()
            if tenant is None:
                self.stderr.write(f"{subdomain}: no such tenant (run seed_demo first)")
                continue
            if self._already_seeded(tenant):
                self.stdout.write(f"{subdomain}: history already seeded")
                continue
            users = self._team(tenant)
            history = list(
                self._history(rng, users, days, scale=1.0 if subdomain == "acme" else 0.6)
            )
            with db.tenant_context(tenant.pk):
                services.outbox_record_history(tenant_id=tenant.pk, history=history)
            print(f"{subdomain}: {len(history)} events queued, delivering...", file=sys.stderr)
            result = services.outbox_drain_tenant(tenant_id=tenant.pk)
            self.stdout.write(f"{subdomain}: {result.sent} events delivered to ClickHouse")
            if result.unavailable:
                self.stderr.write("ClickHouse unavailable; the worker delivers them later.")

    def _already_seeded(self, tenant) -> bool:
        with db.tenant_context(tenant.pk), connection.cursor() as cursor:
            if EventOutbox.objects.for_tenant(tenant).filter(data__seed=True).exists():
                return True
            # Claimed by a drain and not delivered yet: still seeded.
            cursor.execute(
                "SELECT EXISTS (SELECT FROM events_outbox_batch b, unnest(b.event_data) AS d(data) "
                "WHERE b.tenant_id = %s AND d.data @> '{\"seed\": true}')",
                [tenant.pk],
            )
            if cursor.fetchone()[0]:
                return True
        with clickhouse.session() as client:
            return (
                client.query(
                    "SELECT count() FROM events WHERE tenant_id = {t:UUID} "
                    "AND JSONExtractBool(event_data, 'seed')",
                    parameters={"t": str(tenant.pk)},
                ).result_rows[0][0]
                > 0
            )

    def _team(self, tenant) -> list:
        domain = f"{tenant.subdomain}.example"
        with db.tenant_context(tenant.pk):
            existing = {u.email: u for u in TenantUser.objects.for_tenant(tenant)}
        team = list(existing.values())
        for name in TEAM:
            email = f"{name}@{domain}"
            if email not in existing:
                with db.tenant_context(tenant.pk):
                    user = tenant_services.tenant_user_create(
                        tenant=tenant, email=email, name=name.title(), password=DEMO_PASSWORD
                    )
                team.append(user)
        return team

    def _history(self, rng: random.Random, users: list, days: int, *, scale: float):
        # Type names, not the declaring modules: analytics imports no feature app. The outbox
        # refuses a name no app registered (metis.events.recorder).
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
        types, weights = zip(*DOCUMENT_TYPES.items(), strict=True)
        for hour_index in range(days * 24):
            hour = start + timedelta(hours=hour_index)
            weekend = hour.weekday() >= 5
            busy = HOURLY[hour.hour] * (0.3 if weekend else 1.0) * scale
            for _ in range(rng.randint(0, max(1, int(busy)))):
                at = hour + timedelta(seconds=rng.randint(0, 3599))
                user = rng.choice(users)
                roll = rng.random()
                if roll < 0.18:
                    yield at, "auth.sign_in", {"seed": True}, user.pk
                elif roll < 0.22:
                    yield at, "auth.sign_out", {"seed": True}, user.pk
                elif roll < 0.25:
                    data = {"seed": True, "email_domain": "example.com"}
                    yield at, "auth.sign_in_failed", data, None
                elif roll < 0.60:
                    document_type = rng.choices(types, weights)[0]
                    data = {"seed": True, "document_type": document_type}
                    yield at, "document.uploaded", data, user.pk
                elif roll < 0.90:
                    document_type = rng.choices(types, weights)[0]
                    data = {"seed": True, "document_type": document_type}
                    yield at, "document.downloaded", data, user.pk
                elif roll < 0.95:
                    data = {"seed": True, "from_class": "STANDARD", "to_class": "STANDARD_IA"}
                    yield at, "document.tier_changed", data, None
                else:
                    yield at, "document.deleted", {"seed": True}, user.pk
