"""The demo documents command: every tier shows up, through the real services, once."""

from django.core.management import call_command

from documents.models import Document, DocumentAccess
from tenants import db
from tests.documents.conftest import stored_keys


def test_seed_documents_uploads_through_the_services_and_tiers_the_old_ones(
    s3_bucket, tenant, tenant_user
):
    acme = tenant  # subdomain "acme"
    call_command("seed_documents", tenant=["acme"])
    call_command("seed_documents", tenant=["acme"])  # a second run adds nothing

    with db.tenant_context(acme.pk):
        classes = sorted(Document.objects.for_tenant(acme).values_list("storage_class", flat=True))
        uploads = DocumentAccess.objects.for_tenant(acme).filter(action="upload").count()
    assert classes == ["GLACIER", "GLACIER", "STANDARD", "STANDARD", "STANDARD_IA", "STANDARD_IA"]
    assert uploads == 6
    assert len(stored_keys()) == 6
