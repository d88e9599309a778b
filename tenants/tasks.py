"""Celery tasks that touch tenant rows run inside their tenant's context.

A task declared with `base=TenantTask` takes a required `tenant_id` keyword argument, carried in
the message, and its body runs inside `tenant_context(tenant_id)`: one transaction, RLS scoped
to that tenant. Sent without a tenant, or for an unknown or inactive tenant, it fails loudly
before doing anything. Enqueue with `enqueue_for_tenant` so the message leaves on commit.

`RETRY_TRANSIENT` is the retry policy of every task that is safe to repeat (its docstring says
idempotent): another try, later, when the database, Redis or object storage was briefly away.
"""

from __future__ import annotations

import uuid
from functools import partial

import botocore.exceptions
import redis.exceptions
from celery import Task, shared_task
from django.core.management import call_command
from django.db import InterfaceError, OperationalError, transaction
from psycopg_pool import PoolTimeout

from tenants import db, passwords
from tenants.models import Tenant

# Errors that say "not now", never "not this": a lost connection, a full pool, a timeout. A
# refusal (IntegrityError, a 403 from S3, a bad argument) fails at once; retrying repeats it.
# Not metis.objectstore's StorageUnavailable: it wraps refusals and outages alike.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    ConnectionError,
    TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.ReadTimeoutError,
)

# Exponential backoff from 5 s, at most 10 minutes apart, jittered so that a fleet of workers
# does not return all at once; five tries, about twenty minutes, then the task fails.
RETRY_TRANSIENT = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 5,
    "retry_backoff_max": 10 * 60,
    "retry_jitter": True,
    "max_retries": 5,
}


class TenantTask(Task):
    abstract = True
    typing = False  # tenant_id is consumed here, not by the task's own signature
    # True: the body is one transaction. False: the context is only a scope and the body commits
    # as it goes, for tasks that call S3 between writes (a kill then keeps what was committed).
    tenant_transaction = True

    def __call__(self, *args, tenant_id: str | uuid.UUID | None = None, **kwargs):
        if not tenant_id:
            raise db.TenantContextError(
                f"{self.name} is a tenant task and was sent without tenant_id"
            )
        tenant = Tenant.objects.filter(pk=db.parse_tenant_id(tenant_id)).first()
        if tenant is None or not tenant.is_active:
            raise db.TenantContextError(f"{self.name}: no active tenant {tenant_id}")
        with db.tenant_context(tenant.pk, atomic=self.tenant_transaction):
            return super().__call__(*args, **kwargs)


def enqueue_for_tenant(task: Task, tenant: Tenant | uuid.UUID | str, *args, **kwargs) -> None:
    """Send `task` for `tenant` once the current transaction commits (never for a rollback)."""
    tenant_id = str(getattr(tenant, "pk", tenant))
    transaction.on_commit(
        partial(task.apply_async, args=args, kwargs={**kwargs, "tenant_id": tenant_id})
    )


@shared_task(name="tenants.clear_expired_sessions", **RETRY_TRANSIENT)
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
