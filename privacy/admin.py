"""Staff admin for privacy: retention rules, subjects' relationship dates and legal holds,
document holds, and erasure requests (ask, approve, reject, download the receipt).

Every write goes through privacy/services.py; the admin only shows what it refused.
"""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from privacy import receipts, services, subjects, tasks
from privacy.models import DocumentLegalHold, ErasureRequest, RetentionRule, SubjectRecord
from tenants import tasks as tenant_tasks
from tenants.admin import TenantOwnedAdmin
from tenants.http import StaffRequest


def _staff(request: HttpRequest) -> StaffRequest:
    return cast(StaffRequest, request)


@admin.register(RetentionRule)
class RetentionRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "document_type", "years", "basis", "updated_at"]
    readonly_fields = ["updated_at"]


class SubjectRecordForm(forms.ModelForm):
    class Meta:
        model = SubjectRecord
        fields = ["kind", "ref", "relationship_ended_on", "legal_hold", "legal_hold_reason"]

    request: HttpRequest  # set by SubjectRecordAdmin.get_form

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        tenant = _staff(self.request).staff_tenant
        if tenant is not None and cleaned.get("kind") and cleaned.get("ref"):
            try:
                subject = subjects.subject_named(
                    tenant_id=tenant.pk, kind=cleaned["kind"], ref=cleaned["ref"]
                )
            except subjects.UnknownSubject as exc:
                self.add_error("ref", str(exc))
            else:
                cleaned["ref"] = subject.ref
        if cleaned.get("legal_hold") and not (cleaned.get("legal_hold_reason") or "").strip():
            self.add_error("legal_hold_reason", "Give the reason for the legal hold.")
        return cleaned


@admin.register(SubjectRecord)
class SubjectRecordAdmin(TenantOwnedAdmin):
    form = SubjectRecordForm
    list_display = ["ref", "kind", "relationship_ended_on", "legal_hold", "legal_hold_reason"]
    list_filter = ["kind", "legal_hold"]
    search_fields = ["ref"]

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request = request
        return form


@admin.register(DocumentLegalHold)
class DocumentLegalHoldAdmin(TenantOwnedAdmin):
    list_display = ["document", "reason", "placed_at"]
    list_select_related = ["document"]
    # An id box, not a select of every document; RLS and the tenant scope check the id.
    raw_id_fields = ["document"]
    readonly_fields = ["placed_at"]


class ErasureRequestAddForm(forms.ModelForm):
    """Add: kind + ref (+ reason) → services.erasure_request_create, run in clean() so that a
    refusal (unknown subject, malformed reference) shows on the form."""

    class Meta:
        model = ErasureRequest
        fields = ["kind", "ref", "reason"]

    request: HttpRequest  # set by ErasureRequestAdmin.get_form

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        tenant = _staff(self.request).staff_tenant
        if self.errors or tenant is None:
            return cleaned
        try:
            self.instance = services.erasure_request_create(
                tenant=tenant,
                kind=cleaned["kind"],
                ref=cleaned["ref"],
                reason=cleaned.get("reason") or "",
                staff=self.request.user,
            )
        except subjects.UnknownSubject as exc:
            self.add_error("ref", str(exc))
        except services.ErasureRefused as exc:
            self.add_error(None, str(exc))
        return cleaned


@admin.register(ErasureRequest)
class ErasureRequestAdmin(TenantOwnedAdmin):
    list_display = [
        "created_at",
        "kind",
        "ref",
        "status",
        "asked_by",
        "approved_by_staff",
        "held",
        "next_run_at",
        "receipt_link",
    ]
    list_filter = ["status", "kind"]
    list_select_related = ["requested_by_staff", "approved_by_staff"]
    search_fields = ["ref"]
    actions = ["approve", "reject"]
    fields = [
        "id",
        "kind",
        "ref",
        "reason",
        "status",
        "asked_by",
        "approved_by_staff",
        "created_at",
        "approved_at",
        "completed_at",
        "next_run_at",
        "held",
        "error",
        "receipt_link",
    ]
    readonly_fields = fields

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ErasureRequestAddForm
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request = request
        return form

    def get_fields(self, request: HttpRequest, obj=None):
        return ["kind", "ref", "reason"] if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj, form, change) -> None:
        """The add form's clean() already created the request through the service."""

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # decided by the actions, erased by the job: never edited by hand

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the receipt is the record of what was erased

    @admin.display(description="Asked by")
    def asked_by(self, erasure: ErasureRequest) -> str:
        if erasure.requested_by_staff is not None:
            return f"staff {erasure.requested_by_staff}"
        if erasure.requested_by_user_id is not None:
            return f"tenant admin {erasure.requested_by_user_id}"
        return "—"

    @admin.display(description="Held (rule, until)")
    def held(self, erasure: ErasureRequest) -> str:
        parts = receipts.held_parts(erasure)
        return "; ".join(f"{h['rule']} (until {h['until'] or 'lifted'})" for h in parts) or "—"

    @admin.display(description="Receipt")
    def receipt_link(self, erasure: ErasureRequest) -> str:
        url = reverse("admin:privacy_erasurerequest_receipt", args=[erasure.pk])
        return format_html('<a href="{}" download>Download receipt (JSON)</a>', url)

    def get_urls(self):
        receipt = self.admin_site.admin_view(self.receipt_view)
        return [
            path("<uuid:request_id>/receipt/", receipt, name="privacy_erasurerequest_receipt"),
            *super().get_urls(),
        ]

    def receipt_view(self, request: HttpRequest, request_id) -> HttpResponse:
        erasure = get_object_or_404(self.get_queryset(request), pk=request_id)
        return receipts.receipt_download(erasure)

    def _decide(self, request: HttpRequest, queryset, decide, done: str) -> None:
        scope = _staff(request)
        if scope.staff_tenant is None:
            messages.error(request, "Choose one tenant context to decide its erasure requests.")
            return
        for erasure in queryset:
            try:
                decide(erasure)
            except services.ErasureRefused as exc:
                messages.error(request, f"{erasure.kind} {erasure.ref}: {exc}")
            else:
                messages.success(request, f"{erasure.kind} {erasure.ref}: {done}")

    @admin.action(description="Approve (and run) the selected erasure requests")
    def approve(self, request: HttpRequest, queryset) -> None:
        def decide(erasure: ErasureRequest) -> None:
            services.erasure_request_approve(request=erasure, staff=request.user)
            tenant_tasks.enqueue_for_tenant(
                tasks.erasure_run_task, erasure.tenant_id, request_id=str(erasure.pk)
            )

        self._decide(request, queryset, decide, "approved; the erasure runs in the background.")

    @admin.action(description="Reject the selected erasure requests")
    def reject(self, request: HttpRequest, queryset) -> None:
        def decide(erasure: ErasureRequest) -> None:
            services.erasure_request_reject(request=erasure, staff=request.user)

        self._decide(request, queryset, decide, "rejected; nothing was erased.")
