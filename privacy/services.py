"""The erasure request flow: staff or a tenant admin asks, a staff member approves, a job erases.

A tenant admin is a tenant user with `is_admin` (set by staff). Approval is staff-only and,
for a request staff made, by another staff member (four eyes): an erasure cannot be undone.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from privacy import subjects
from privacy.models import ErasureRequest, ErasureStatus
from tenants import db
from tenants.models import Tenant, TenantUser


class ErasureRefused(PermissionError):
    """The request or approval is not allowed; the message says why."""


def is_tenant_admin(user: TenantUser | None) -> bool:
    return user is not None and user.is_admin


def erasure_request_create(
    *,
    tenant: Tenant,
    kind: str,
    ref: str,
    reason: str = "",
    staff: AbstractBaseUser | None = None,
    user: TenantUser | None = None,
) -> ErasureRequest:
    """Record a request to erase this tenant's subject; nothing is erased until approved."""
    db.require_tenant_context(tenant)
    if staff is None and not is_tenant_admin(user):
        raise ErasureRefused("Only staff or a tenant admin may ask for an erasure.")
    if user is not None and user.tenant_id != tenant.pk:
        raise ErasureRefused("This user belongs to another organisation.")
    subject = subjects.subject_named(tenant_id=tenant.pk, kind=kind, ref=ref)
    return ErasureRequest.objects.create(
        tenant=tenant,
        kind=subject.kind,
        ref=subject.ref,
        reason=reason[:255],
        requested_by_staff=staff,
        requested_by_user_id=user.pk if user is not None else None,
    )


def erasure_request_approve(*, request: ErasureRequest, staff: AbstractBaseUser) -> ErasureRequest:
    """Approve a waiting request (staff only; not one's own); the caller then runs it."""
    db.require_tenant_context(request.tenant_id)
    if not getattr(staff, "is_staff", False):
        raise ErasureRefused("Only staff may approve an erasure.")
    if request.status != ErasureStatus.REQUESTED:
        raise ErasureRefused(f"This request is {request.get_status_display().lower()}.")
    if request.requested_by_staff_id is not None and request.requested_by_staff_id == staff.pk:
        raise ErasureRefused("Another staff member must approve an erasure you asked for.")
    request.status = ErasureStatus.APPROVED
    request.approved_by_staff = staff
    request.approved_at = timezone.now()
    request.save(update_fields=["status", "approved_by_staff", "approved_at"])
    return request


def erasure_request_reject(
    *, request: ErasureRequest, staff: AbstractBaseUser, reason: str = ""
) -> ErasureRequest:
    """Refuse a waiting request (staff only); nothing is erased and it cannot be approved later."""
    db.require_tenant_context(request.tenant_id)
    if not getattr(staff, "is_staff", False):
        raise ErasureRefused("Only staff may reject an erasure.")
    if request.status != ErasureStatus.REQUESTED:
        raise ErasureRefused(f"This request is {request.get_status_display().lower()}.")
    request.status = ErasureStatus.REJECTED
    request.approved_by_staff = staff  # who decided, either way
    request.completed_at = timezone.now()
    if reason:
        request.error = f"Rejected: {reason}"[:2000]
    request.save(update_fields=["status", "approved_by_staff", "completed_at", "error"])
    return request


def erasures_due(*, now: dt.datetime) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant id, request id) of every held request whose date has come, tenant by tenant."""
    due = []
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        with db.tenant_context(tenant_id):
            ids = ErasureRequest.objects.for_tenant(tenant_id).due(now).values_list("pk", flat=True)
            due += [(tenant_id, request_id) for request_id in ids]
    return due
