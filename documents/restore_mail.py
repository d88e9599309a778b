"""Mail the tenant user who asked for a Glacier restore once the copy is ready, once.

The restore check (documents/restore.py) sends `documents.mail_restore_ready` for the document
when it sees the restore done; the task runs in the document's tenant context (TenantTask), so
the row, the requester and the tenant are that tenant's alone (RLS and the composite key of
`restore_requested_by`). A restore requested by staff mails nobody.

Once: the task locks the row, mails only while `restore_notified_at` is empty, and sets it in
the same transaction. A second task for the same restore waits for the lock, then finds it set.
A failed send rolls the transaction back and the task retries; only a commit failing after the
server took the mail could send it twice. The lock is held during the send (unlike the house
rule of no transaction around outside calls): on one row, bounded by EMAIL_TIMEOUT, and it is
what makes the mail go once.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from documents.models import Document, RestoreStatus
from tenants import db
from tenants.models import Tenant
from tenants.tasks import enqueue_for_tenant


def document_link(*, tenant: Tenant, document_id: uuid.UUID) -> str:
    """The document's page on its tenant's site, for a mail sent outside a request."""
    path = reverse(
        "documents:detail", kwargs={"document_id": document_id}, urlconf=settings.TENANT_URLCONF
    )
    return settings.TENANT_SITE_URL.format(subdomain=tenant.subdomain) + path


def restore_ready_mail_enqueue(*, document: Document) -> None:
    """Send the requester's mail task once the caller's transaction commits (if anyone asked)."""
    db.require_tenant_context(document)
    if document.restore_requested_by_id is None:
        return
    from documents import tasks  # tasks imports the restore check, which calls this

    enqueue_for_tenant(tasks.mail_restore_ready, document.tenant_id, document_id=str(document.pk))


def restore_ready_mail_send(*, document_id: uuid.UUID | str) -> bool:
    """Mail the requester of the document's ready restore; False when there is nothing to send
    (already sent, not ready, deleted, staff-requested, the user deactivated). Requires the
    document's tenant context."""
    tenant_id = db.require_tenant_context()
    with transaction.atomic():
        document = (
            Document.objects.for_tenant(tenant_id)
            .live()
            .filter(
                pk=document_id,
                restore_status=RestoreStatus.READY,
                restore_notified_at__isnull=True,
            )
            .select_related("restore_requested_by")
            .select_for_update(of=("self",))
            .first()
        )
        user = document.restore_requested_by if document else None
        if document is None or user is None or not user.is_active:
            return False
        tenant = Tenant.objects.get(pk=tenant_id)
        context = {
            "tenant": tenant,
            "user": user,
            "document": document,
            "link": document_link(tenant=tenant, document_id=document.pk),
            "days": settings.DOCUMENT_RESTORE_DAYS,
        }
        subject = render_to_string("documents/email/restore_ready_subject.txt", context)
        body = render_to_string("documents/email/restore_ready_body.txt", context)
        send_mail(" ".join(subject.split()), body, None, [user.email])
        Document.objects.for_tenant(tenant_id).filter(pk=document.pk).update(
            restore_notified_at=timezone.now()
        )
    return True
