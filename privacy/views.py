"""The tenant admin's erasure page: ask for a subject's erasure, follow each request, download
its receipt. Staff approve in the admin; nothing is erased from here.

Lookups go through `ErasureRequest.objects.for_tenant(request.tenant)` inside the host's tenant
context (RLS): another tenant's request id is a 404 like an id that exists nowhere.
"""

from __future__ import annotations

import uuid

from django import forms
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from documents.validation import SUBJECT_REF_MAX_CHARS
from privacy import receipts, services, subjects
from privacy.models import ErasureRequest, SubjectKind
from tenants.http import TenantRequest
from tenants.models import TenantUser
from tenants.views import tenant_login_required

LISTED = 50


class ErasureRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=SubjectKind.choices, label="Subject")
    email = forms.EmailField(required=False, help_text="For a tenant user: their email.")
    subject_ref = forms.CharField(
        required=False,
        max_length=SUBJECT_REF_MAX_CHARS,
        help_text="For a borrower: the subject_ref their documents carry.",
    )
    reason = forms.CharField(required=False, max_length=255)

    def __init__(self, *args, tenant_id, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tenant_id = tenant_id

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("kind") == SubjectKind.USER:
            email = TenantUser.normalize_email(data.get("email") or "")
            user = TenantUser.objects.for_tenant(self.tenant_id).filter(email=email).first()
            if user is None:
                self.add_error("email", "No user of this organisation has this email.")
            else:
                data["ref"] = str(user.pk)
        elif data.get("kind") == SubjectKind.BORROWER:
            data["ref"] = (data.get("subject_ref") or "").strip()
        return data


def _admin_only(request: TenantRequest) -> HttpResponse | None:
    if request.tenant_user is None or not request.tenant_user.is_admin:
        return render(request, "privacy/erasure_refused.html", status=403)
    return None


def _page(request: TenantRequest, form: ErasureRequestForm, status: int = 200) -> HttpResponse:
    erasures = list(ErasureRequest.objects.for_tenant(request.tenant)[:LISTED])
    user_ids = [e.ref for e in erasures if e.kind == SubjectKind.USER]
    emails = dict(
        TenantUser.objects.for_tenant(request.tenant)
        .filter(pk__in=user_ids)
        .values_list("pk", "email")
    )
    rows = [
        {
            "erasure": erasure,
            "subject": (
                emails.get(_uuid_or_none(erasure.ref), "(erased user)")
                if erasure.kind == SubjectKind.USER
                else erasure.ref
            ),
            "held": receipts.held_parts(erasure),
        }
        for erasure in erasures
    ]
    return render(request, "privacy/erasure.html", {"rows": rows, "form": form}, status=status)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@tenant_login_required
@require_http_methods(["GET", "POST"])
def erasure_view(request: TenantRequest) -> HttpResponse:
    if refused := _admin_only(request):
        return refused
    if request.method == "GET":
        return _page(request, ErasureRequestForm(tenant_id=request.tenant.pk))
    form = ErasureRequestForm(request.POST, tenant_id=request.tenant.pk)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        services.erasure_request_create(
            tenant=request.tenant,
            kind=form.cleaned_data["kind"],
            ref=form.cleaned_data["ref"],
            reason=form.cleaned_data.get("reason") or "",
            user=request.tenant_user,
        )
    except subjects.UnknownSubject as exc:
        field = "subject_ref" if form.cleaned_data["kind"] == SubjectKind.BORROWER else "email"
        form.add_error(field, str(exc))
        return _page(request, form, status=400)
    except services.ErasureRefused as exc:
        form.add_error(None, str(exc))
        return _page(request, form, status=403)
    return redirect("privacy:erasure")


@tenant_login_required
@require_GET
def erasure_receipt_view(request: TenantRequest, request_id) -> HttpResponse:
    if refused := _admin_only(request):
        return refused
    erasure = get_object_or_404(ErasureRequest.objects.for_tenant(request.tenant), pk=request_id)
    return receipts.receipt_download(erasure)
