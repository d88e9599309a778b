"""Celery tasks that touch tenant rows run inside their tenant's context.

A task declared with `base=TenantTask` takes a required `tenant_id` keyword argument, carried in
the message, and its body runs inside `tenant_context(tenant_id)`: one transaction, RLS scoped
to that tenant. Sent without a tenant, or for an unknown or inactive tenant, it fails loudly
before doing anything. Enqueue with `enqueue_for_tenant` so the message leaves on commit.
"""

from __future__ import annotations

import uuid
from functools import partial

from celery import Task, shared_task
from django.core.management import call_command
from django.db import transaction

from tenants import db, passwords
from tenants.models import Tenant


class TenantTask(Task):
    abstract = True
    typing = False  # tenant_id is consumed here, not by the task's own signature

    def __call__(self, *args, tenant_id: str | uuid.UUID | None = None, **kwargs):
        if not tenant_id:
            raise db.TenantContextError(
                f"{self.name} is a tenant task and was sent without tenant_id"
            )
        tenant = Tenant.objects.filter(pk=db.parse_tenant_id(tenant_id)).first()
        if tenant is None or not tenant.is_active:
            raise db.TenantContextError(f"{self.name}: no active tenant {tenant_id}")
        with db.tenant_context(tenant.pk):
            return super().__call__(*args, **kwargs)


def enqueue_for_tenant(task: Task, tenant: Tenant | uuid.UUID | str, *args, **kwargs) -> None:
    """Send `task` for `tenant` once the current transaction commits (never for a rollback)."""
    tenant_id = str(getattr(tenant, "pk", tenant))
    transaction.on_commit(
        partial(task.apply_async, args=args, kwargs={**kwargs, "tenant_id": tenant_id})
    )


@shared_task(name="tenants.clear_expired_sessions")
def clear_expired_sessions() -> None:
    """Delete expired sessions from the database (cached_db keeps a copy there). Idempotent."""
    call_command("clearsessions")


@shared_task(base=TenantTask, name="tenants.password_reset_request")
def password_reset_request(email: str, origin: str) -> None:
    """Mail a reset link if the tenant has an active user with this email.

    Every reset request sends this task, whether or not the email is known, so the page answers
    in the same time either way: the lookup, the token and the mail happen here. Not
    idempotent (each run mails a new link), hence no retries.
    """
    tenant = Tenant.objects.get(pk=db.require_tenant_context())
    passwords.password_reset_request(tenant=tenant, email=email, origin=origin)
