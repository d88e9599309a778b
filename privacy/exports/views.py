"""Tenant pages: "Download my data", a tenant admin's exports, an export's progress and link.

Every lookup goes through `Export.objects.visible_to(user)`: another user's export, or another
tenant's id, is a 404 like an id that exists nowhere.
"""

from __future__ import annotations

from django import forms
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from privacy.exports import services
from privacy.exports.models import Export, ExportScope
from tenants.http import TenantRequest
from tenants.models import TenantUser
from tenants.views import tenant_login_required

LISTED = 50


class SubjectExportForm(forms.Form):
    scope = forms.ChoiceField(choices=ExportScope.choices)
    email = forms.EmailField(required=False, help_text="For a tenant user.")
    subject_ref = forms.CharField(
        required=False, max_length=255, help_text="For a borrower: the documents' subject_ref."
    )

    def __init__(self, *args, tenant_id, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tenant_id = tenant_id

    def clean(self) -> dict:
        data = super().clean() or {}
        scope = data.get("scope")
        if scope == ExportScope.USER:
            email = TenantUser.normalize_email(data.get("email") or "")
            user = TenantUser.objects.for_tenant(self.tenant_id).filter(email=email).first()
            if user is None:
                self.add_error("email", "No user of this tenant has this email.")
            data["subject_user"] = user
        elif scope == ExportScope.BORROWER and not (data.get("subject_ref") or "").strip():
            self.add_error("subject_ref", "Give the borrower's subject reference.")
        return data


def _visible(request: TenantRequest):
    return Export.objects.visible_to(request.tenant_user).select_related("subject_user")


@tenant_login_required
@require_GET
def exports_view(request: TenantRequest) -> HttpResponse:
    return _exports_page(request, SubjectExportForm(tenant_id=request.tenant.pk))


def _exports_page(request: TenantRequest, form: SubjectExportForm, status: int = 200):
    exports = list(_visible(request)[:LISTED])
    return render(
        request, "privacy/exports.html", {"exports": exports, "form": form}, status=status
    )


@tenant_login_required
@require_POST
def export_mine_view(request: TenantRequest) -> HttpResponse:
    export = services.export_request(requested_by=request.tenant_user, scope=ExportScope.USER)
    return redirect("exports:detail", export_id=export.pk)


@tenant_login_required
@require_POST
def export_subject_view(request: TenantRequest) -> HttpResponse:
    if not request.tenant_user.is_admin:
        return render(request, "privacy/export_refused.html", status=403)
    form = SubjectExportForm(request.POST, tenant_id=request.tenant.pk)
    if not form.is_valid():
        return _exports_page(request, form, status=400)
    export = services.export_request(
        requested_by=request.tenant_user,
        scope=form.cleaned_data["scope"],
        subject_user=form.cleaned_data.get("subject_user"),
        subject_ref=form.cleaned_data.get("subject_ref") or "",
    )
    return redirect("exports:detail", export_id=export.pk)


@tenant_login_required
@require_GET
def export_detail_view(request: TenantRequest, export_id) -> HttpResponse:
    export = get_object_or_404(_visible(request), pk=export_id)
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse(
            {
                "id": str(export.pk),
                "status": export.status,
                "percent": export.progress_percent,
                "stage": export.progress_note,
                "error": export.error,
            }
        )
    return render(request, "privacy/export_detail.html", {"export": export})


@tenant_login_required
@require_GET
def export_download_view(request: TenantRequest, export_id) -> HttpResponse:
    export = get_object_or_404(_visible(request), pk=export_id)
    try:
        url = services.export_link(export=export, user=request.tenant_user)
    except services.ExportNotReady:
        status = 410 if export.deleted_at else 409
        return render(request, "privacy/export_detail.html", {"export": export}, status=status)
    return redirect(url)
