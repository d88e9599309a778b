"""The tenant page's "request restore" button: POST, then back to where the user was."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from documents import restore
from documents.models import Document, RestoreStatus
from tenants import views as tenant_views


@require_POST
@tenant_views.tenant_login_required
def document_request_restore(request: HttpRequest, document_id: uuid.UUID) -> HttpResponse:
    # Another tenant's document is a 404, as is an unknown one: scoped here, guarded by RLS.
    document = get_object_or_404(Document.objects.for_tenant(request.tenant).live(), pk=document_id)
    try:
        result = restore.document_restore_request(
            document=document, requested_by=request.tenant_user
        )
    except restore.RestoreError as error:
        messages.error(request, str(error))
    else:
        level = messages.ERROR if result.status == RestoreStatus.FAILED else messages.SUCCESS
        messages.add_message(request, level, result.message)
    return redirect(tenant_views.safe_next_url(request, fallback=reverse("tenants:home")))
