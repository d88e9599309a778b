"""Show the tiering plan (documents due per tenant and class) and apply it, with progress."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from documents import tiering
from tenants import db
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Move documents that are due to STANDARD_IA / GLACIER (by age), tenant by tenant. "
        "Prints the plan first; with --dry-run, only the plan."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="print the plan, move nothing")
        parser.add_argument("--tenant", metavar="SUBDOMAIN", help="only this tenant")
        parser.add_argument("--batch-size", type=int, help="documents per transaction")

    def handle(self, *args, dry_run: bool, tenant: str | None, batch_size, **options) -> None:
        tenants = Tenant.objects.filter(is_active=True).order_by("subdomain")
        if tenant:
            tenants = Tenant.objects.filter(subdomain=tenant)
            if not tenants.exists():
                raise CommandError(f"no tenant with subdomain {tenant!r}")
        now = timezone.now()
        plan = {}
        for t in tenants:
            with db.tenant_context(t.pk):
                plan[t] = tiering.tier_plan(tenant_id=t.pk, now=now)
        total = sum(sum(counts.values()) for counts in plan.values())
        self.stdout.write(f"{'tenant':24}{'to STANDARD_IA':>16}{'to GLACIER':>12}")
        for t, counts in plan.items():
            self.stdout.write(
                f"{t.subdomain:24}{counts.get('STANDARD_IA', 0):>16}{counts.get('GLACIER', 0):>12}"
            )
        self.stdout.write(f"{total} document(s) due")
        if dry_run or not total:
            if dry_run:
                self.stdout.write("dry run: nothing moved")
            return
        reports = []
        # Drawn only when stderr is a terminal (disable=None): logs get no progress lines.
        with tqdm(total=total, file=self.stderr._out, disable=None, unit="doc") as bar:
            for t, counts in plan.items():
                if counts:
                    reports.append(self._tier(t, now=now, batch_size=batch_size, bar=bar))
        failed = 0
        for report in reports:
            self.stdout.write(str(report))
            failed += sum(report.outcomes[outcome] for outcome in tiering.NOT_MOVED)
        if failed:
            raise CommandError(f"{failed} document(s) not moved; see the log, then run again")

    def _tier(self, tenant: Tenant, *, now, batch_size: int | None, bar) -> tiering.TieringReport:
        """Tier one tenant batch by batch, each batch in a tenant context of its own.

        The command is the entry point, so it opens the contexts; as in the Celery task, each
        is a scope, not one transaction: each document is recorded as soon as it is copied, so
        an interrupted run keeps what it did (the sweep finishes the document in between).
        """
        report = tiering.TieringReport(tenant_id=tenant.pk)
        size = batch_size or settings.DOCUMENT_TIER_BATCH_SIZE
        after = None
        while True:
            with db.tenant_context(tenant.pk, atomic=False):
                batch = tiering.documents_tier_due(
                    tenant_id=tenant.pk,
                    now=now,
                    batch_size=size,
                    limit=size,
                    after=after,
                    on_progress=lambda document, outcome: bar.update(),
                )
            report.outcomes.update(batch.outcomes)
            report.moved_to.update(batch.moved_to)
            report.last_id = batch.last_id or report.last_id
            if not batch.more:
                return report
            after = batch.last_id
