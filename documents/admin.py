"""Staff admin for documents: list, upload and replace through the services, presigned
download, soft delete, storage used per tenant and tier, and the read-only access log."""

from __future__ import annotations

from csp.decorators import csp_update
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from documents import admin_actions, pagination, replication, services
from documents.models import (
    Document,
    DocumentAccess,
    DocumentType,
    DocumentUsage,
    DocumentVersion,
    VersionUsage,
)
from documents.validation import SUBJECT_REF_MAX_CHARS, DocumentRejected, check_subject_ref
from metis.admin_readonly import ReadOnlyAdminMixin
from metis.objectstore import store
from metis.objectstore.errors import STORE_ERRORS, StorageUnavailable
from tenants import client_ip
from tenants.admin import TenantOwnedAdmin, staff_scoped


def _actor(request: HttpRequest) -> dict:
    return {"staff": request.user, "ip_address": client_ip.client_ip(request)}


class DocumentAdminForm(forms.ModelForm):
    """Add: type + file → services.document_upload. Change: optional file → document_replace.

    The service runs in clean(), not save(), so that a refusal (wrong type, duplicate, S3 down)
    shows as a form error instead of a server error; save() then returns the stored document.
    """

    document_type = forms.ChoiceField(choices=DocumentType.choices, required=False)
    file = forms.FileField(required=False, allow_empty_file=True, label="File")
    # The borrower the document is about: how erasure and portability find their documents.
    subject_ref = forms.CharField(
        required=False,
        max_length=SUBJECT_REF_MAX_CHARS,
        label="Subject reference",
        help_text="The tenant's customer id of the person this document is about (optional).",
    )

    class Meta:
        model = Document
        fields: list[str] = []

    request: HttpRequest  # set by DocumentAdmin.get_form

    def clean_subject_ref(self) -> str:
        try:
            return check_subject_ref(self.cleaned_data.get("subject_ref"))
        except DocumentRejected as exc:
            raise forms.ValidationError(exc.messages[0], code="bad_subject_ref") from exc

    def clean(self):
        cleaned = super().clean()
        file = cleaned.get("file")
        adding = self.instance._state.adding
        if adding and not file:
            self.add_error("file", "Choose a file to upload.")
        if adding and not cleaned.get("document_type"):
            self.add_error("document_type", "Choose the document type.")
        if self.errors or not file:
            return cleaned
        try:
            if adding:
                self.instance = services.document_upload(
                    tenant=self.request.staff_tenant,
                    document_type=cleaned["document_type"],
                    file=file,
                    filename=file.name,
                    subject_ref=cleaned.get("subject_ref") or "",
                    **_actor(self.request),
                )
            else:
                self.instance = services.document_replace(
                    document=self.instance, file=file, filename=file.name, **_actor(self.request)
                )
        except DocumentRejected as exc:
            self.add_error("file", exc.messages[0])
        except StorageUnavailable:
            self.add_error(None, "The document store is not reachable; nothing was saved.")
        return cleaned


@admin.register(Document)
class DocumentAdmin(TenantOwnedAdmin):
    form = DocumentAdminForm
    list_display = [
        "original_filename",
        "tenant",
        "document_type",
        "storage_class",
        "size",
        "version_count",
        "created_at",
        "deleted_at",
        "download_link",
    ]
    list_filter = [
        "storage_class",
        "document_type",
        "tenant",
        ("deleted_at", admin.EmptyFieldListFilter),
    ]
    list_select_related = ["tenant"]
    search_fields = ["original_filename", "sha256"]
    readonly_fields = [
        "id",
        "tenant",
        "document_type_shown",
        "original_filename",
        "content_type",
        "size",
        "sha256",
        "storage_key",
        "version_id",
        "storage_class",
        "storage_class_changed_at",
        "restore_status",
        "restore_requested_at",
        "restore_expires_at",
        "last_accessed_at",
        "metadata",
        "uploaded_by",
        "uploaded_by_staff",
        "created_at",
        "updated_at",
        "deleted_at",
        "versions_table",
    ]
    actions = [
        "open_presigned_download",
        "soft_delete",
        admin_actions.request_restore,
        admin_actions.change_tier_to_standard,
        admin_actions.change_tier_to_ia,
        admin_actions.change_tier_to_glacier,
    ]

    # A tenant may hold millions of documents: count pages by the planner's estimate, and skip
    # the second, unfiltered count the admin would show beside a filtered one.
    paginator = pagination.EstimatedCountPaginator
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).with_version_count()

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request = request
        return form

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ["document_type", "file", "subject_ref"]
        return [*self.readonly_fields, "file"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return self.readonly_fields if obj is not None else []

    def save_model(self, request: HttpRequest, obj, form, change) -> None:
        """The form's clean() already stored the document through the services."""

    def save_related(self, request: HttpRequest, form, formsets, change) -> None:
        """Versions are written by the services only."""

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # soft delete only (the action below); objects are kept for retention

    @admin.display(description="Versions (every one is kept)")
    def versions_table(self, document: Document) -> str:
        # Read-only on purpose: an inline formset would be validated after the upload in clean().
        versions = document.versions.for_tenant(document.tenant_id).order_by("-number")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    v.number,
                    v.original_filename,
                    filesizeformat(v.size_bytes),
                    v.sha256[:12],
                    f"{v.created_at:%Y-%m-%d %H:%M}",
                    _dr_state(v),
                )
                for v in versions
            ),
        )
        header = (
            "<tr><th>#</th><th>File</th><th>Size</th><th>SHA-256</th><th>Stored</th>"
            "<th>DR copy</th></tr>"
        )
        return format_html("<table>{}{}</table>", mark_safe(header), rows)

    @admin.display(description="Type")
    def document_type_shown(self, document: Document) -> str:
        return document.get_document_type_display()

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, document: Document) -> str:
        return filesizeformat(document.size_bytes)

    @admin.display(description="Versions", ordering="version_count")
    def version_count(self, document: Document) -> int:
        return document.version_count

    @admin.display(description="Download")
    def download_link(self, document: Document) -> str:
        if not services.document_is_downloadable(document):
            return "—"
        url = reverse("admin:documents_document_download", args=[document.pk])
        return format_html('<a href="{}">Download</a>', url)

    def get_urls(self):
        download = self.admin_site.admin_view(self.download_view)
        return [
            path("<uuid:document_id>/download/", download, name="documents_document_download"),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, document_id) -> HttpResponseRedirect:
        """Redirect to a presigned URL or signed local link, after scope and permission checks."""
        document = get_object_or_404(self.get_queryset(request), pk=document_id)
        if not self.has_view_permission(request, document):
            return redirect("admin:index")
        try:
            return HttpResponseRedirect(
                services.document_download_url(document=document, **_actor(request))
            )
        except services.DocumentNotDownloadable as exc:
            messages.error(request, str(exc))
            return redirect("admin:documents_document_change", document.pk)

    @admin.action(description="Open a presigned download (one document)")
    def open_presigned_download(self, request: HttpRequest, queryset):
        if queryset.count() != 1:
            messages.error(request, "Select exactly one document to download.")
            return None
        return self.download_view(request, queryset.get().pk)

    @admin.action(description="Delete selected documents (soft: objects are kept)")
    def soft_delete(self, request: HttpRequest, queryset):
        if request.staff_tenant is None:
            messages.error(request, "Choose one tenant context to delete its documents.")
            return
        count = 0
        for document in queryset.filter(deleted_at__isnull=True):
            services.document_delete(document=document, **_actor(request))
            count += 1
        messages.success(request, f"{count} document(s) deleted; their objects are kept.")

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "storage_summary": storage_summary(request),
        }
        view = super().changelist_view
        # "Open a presigned download" answers the action form's POST with a redirect to the
        # object store, and browsers hold each redirect of a form submission to the submitting
        # page's form-action (settings, "Content Security Policy"): this page alone may lead
        # there. Both headers get it; django-csp writes only the one that is configured.
        origin = _store_origin()
        if origin:
            for report_only in (False, True):
                view = csp_update({"form-action": [origin]}, REPORT_ONLY=report_only)(view)
        return view(request, extra_context)


def _dr_state(version: DocumentVersion) -> str:
    if not replication.dr_enabled():
        return "no DR bucket"
    if version.is_replicated():
        return f"copied {version.dr_replicated_at:%Y-%m-%d %H:%M}"
    return f"due since {version.dr_pending_since:%Y-%m-%d %H:%M}"


def _store_origin() -> str:
    """The object store's origin for presigned downloads, or "" when there is no store to reach
    (then the download action fails on its own, and the policy stays as strict as elsewhere)."""
    try:
        return store.documents_store().presigned_origin()
    except (ImproperlyConfigured, *STORE_ERRORS):
        return ""


def storage_summary(request: HttpRequest) -> dict:
    """Storage used in the staff member's scope: per tenant and tier, and every version kept.

    Read from the usage rows the triggers keep (documents/usage_sql.py), not summed from the
    documents: a few rows per tenant, however many documents it holds."""
    by_tier = (
        staff_scoped(DocumentUsage.objects.all(), request)
        .filter(documents__gt=0)
        .values("tenant__name", "storage_class", "documents", "current_bytes")
        .order_by("tenant__name", "storage_class")
    )
    all_versions = (
        staff_scoped(VersionUsage.objects.all(), request)
        .filter(versions__gt=0)
        .values("tenant__name", "versions", "stored_bytes")
        .order_by("tenant__name")
    )
    summary = {"by_tier": list(by_tier), "all_versions": list(all_versions)}
    if replication.dr_enabled():
        summary["dr_lag"] = list(
            staff_scoped(DocumentVersion.objects.all(), request)
            .unreplicated()
            .order_by()
            .values("tenant__name")
            .annotate(pending=Count("id"), oldest=Min("dr_pending_since"))
            .order_by("tenant__name")
        )
    return summary


@admin.register(DocumentAccess)
class DocumentAccessAdmin(ReadOnlyAdminMixin, TenantOwnedAdmin):
    """An audit trail: rows are only ever added, by the services."""

    list_display = ["at", "action", "document", "user", "staff", "ip_address", "tenant"]
    list_filter = ["action", "tenant"]
    list_select_related = ["document", "user", "staff", "tenant"]
    date_hierarchy = "at"
