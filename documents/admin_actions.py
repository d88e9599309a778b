"""Admin actions on documents: request a Glacier restore, change the storage tier.

Plain functions taking (modeladmin, request, queryset), for `DocumentAdmin.actions`. They run in
the staff member's chosen tenant context and call the services; each document gets a message.
They need the change permission, which TenantOwnedAdmin denies in the read-only all-tenants mode.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from documents import restore, tiering
from documents.models import RestoreStatus, StorageClass
from tenants import db

_LEVELS = {
    RestoreStatus.REQUESTED: messages.SUCCESS,
    RestoreStatus.READY: messages.SUCCESS,
    RestoreStatus.FAILED: messages.ERROR,
}


@admin.action(description="Request restore from Glacier", permissions=["change"])
def request_restore(modeladmin, request: HttpRequest, queryset) -> None:
    for document in queryset:
        try:
            result = restore.document_restore_request(
                document=document, requested_by_staff=request.user
            )
        except (restore.RestoreError, db.TenantContextError) as error:
            modeladmin.message_user(request, f"{document}: {error}", messages.ERROR)
        else:
            level = _LEVELS.get(result.status, messages.INFO)
            modeladmin.message_user(request, f"{document}: {result.message}", level)


def _change_tier(storage_class: str):
    label = StorageClass(storage_class).label

    @admin.action(description=f"Change tier to {label}", permissions=["change"])
    def action(modeladmin, request: HttpRequest, queryset) -> None:
        changed = 0
        for document in queryset:
            try:
                outcome = tiering.document_tier_change(
                    document=document, storage_class=storage_class, by_staff=request.user
                )
            except (tiering.TierChangeError, db.TenantContextError) as error:
                modeladmin.message_user(request, f"{document}: {error}", messages.ERROR)
            else:
                changed += outcome != tiering.ALREADY
        modeladmin.message_user(request, f"{changed} document(s) moved to {label}.")

    action.__name__ = f"change_tier_to_{storage_class.lower()}"
    return action


change_tier_to_standard = _change_tier(StorageClass.STANDARD)
change_tier_to_ia = _change_tier(StorageClass.STANDARD_IA)
change_tier_to_glacier = _change_tier(StorageClass.GLACIER)
