"""Give each demo tenant a few documents, some old enough to tier, so the pages and charts show
every tier. Idempotent: a tenant that already has documents is left alone."""

from __future__ import annotations

import contextlib
import io
import uuid
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from PIL import Image
from pypdf import PdfWriter

from documents import consistency, services, tiering
from documents.models import Document, DocumentVersion
from tenants import db
from tenants.models import Tenant, TenantUser

# (document type, file name, kind, age in days): ages either side of the 30- and 90-day tiers.
DEMO_DOCUMENTS = [
    ("pan", "pan-card.pdf", "pdf", 2),
    ("aadhar", "aadhaar-front.png", "png", 10),
    ("bank-statement", "statement-2026-10.pdf", "pdf", 35),
    ("bank-statement", "statement-2026-08.pdf", "pdf", 95),
    ("image", "selfie.png", "png", 40),
    ("report", "credit-report.pdf", "pdf", 120),
]


def _demo_file(kind: str, label: str) -> bytes:
    """A real PNG or one-page PDF (uploads must decode or parse), unique: no duplicate refusals."""
    unique = uuid.uuid4()
    out = io.BytesIO()
    if kind == "png":
        Image.frombytes("RGB", (4, 4), unique.bytes * 3).resize((64, 64)).save(out, "PNG")
    else:
        pdf = PdfWriter()
        pdf.add_blank_page(width=595, height=842)  # A4
        pdf.add_metadata({"/Title": f"Metis demo document: {label}", "/Subject": str(unique)})
        pdf.write(out)
    return out.getvalue()


class Command(BaseCommand):
    help = "Seed demo documents for the demo tenants (acme, globex) and tier the old ones."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", action="append", default=None, help="subdomain(s)")

    def handle(self, *args, tenant: list[str] | None, **options):
        for subdomain in tenant or ["acme", "globex"]:
            found = Tenant.objects.filter(subdomain=subdomain).first()
            if found is None:
                raise CommandError(f"no tenant {subdomain!r}: run seed_demo first")
            self._seed(found)

    def _seed(self, tenant: Tenant) -> None:
        with db.tenant_context(tenant.pk):
            if Document.objects.for_tenant(tenant).exists():
                self.stdout.write(f"{tenant.subdomain}: has documents already, left alone")
                return
            user = TenantUser.objects.for_tenant(tenant).order_by("email").first()
        now = timezone.now()
        for document_type, filename, kind, age_days in DEMO_DOCUMENTS:
            # The command is the entry point: it opens the context, and sweeps once it ended.
            with contextlib.ExitStack() as after:
                after.callback(consistency.purge_uncommitted)
                after.enter_context(db.tenant_context(tenant.pk))
                document = services.document_upload(
                    tenant=tenant,
                    document_type=document_type,
                    file=io.BytesIO(_demo_file(kind, filename)),
                    filename=filename,
                    user=user,
                )
                # Backdate, as if uploaded then, so tiering has something due.
                created = now - timedelta(days=age_days)
                Document.objects.for_tenant(tenant).filter(pk=document.pk).update(
                    created_at=created, stored_at=created, storage_class_changed_at=created
                )
                DocumentVersion.objects.for_tenant(tenant).filter(document=document).update(
                    created_at=created
                )
        with db.tenant_context(tenant.pk):
            report = tiering.documents_tier_due(tenant_id=tenant.pk)
        self.stdout.write(
            f"{tenant.subdomain}: {len(DEMO_DOCUMENTS)} documents uploaded; tiering: {report}"
        )
