"""The tenant context: the one place that sets `app.current_tenant` for PostgreSQL.

Row-level security policies compare each row's `tenant_id` with the `app.current_tenant`
setting. It is set with `set_config(..., is_local => true)`, which lasts only until the end of
the current transaction, so a pooled connection (Django's pool or PgBouncer in transaction
mode) can never carry one tenant's setting into the next request or task.

The rule: entry points open a context (the middleware, the Celery task base `TenantTask`, the
staff scope, management commands, tests); services never open one, they require it with
`require_tenant_context()` or `@tenant_context_required`. So a service runs in exactly the
transaction and tenant its caller chose, and one forgotten entry point fails loudly instead of
quietly opening a context of its own.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, overload

from django.db import connections, transaction

TENANT_SETTING = "app.current_tenant"
ALL_TENANTS_SETTING = "app.all_tenants"

# Mirrors the database setting for Python code (cache keys, logging); the database is the guard.
_current_tenant: ContextVar[uuid.UUID | None] = ContextVar("current_tenant", default=None)


class TenantContextError(RuntimeError):
    """Raised when tenant-owned work is attempted without a valid tenant."""


def current_tenant_id() -> uuid.UUID | None:
    """Return the tenant id of the innermost active tenant context, if any."""
    return _current_tenant.get()


def _tenant_id_of(value: Any) -> Any:
    """Return the tenant id a value names: a tenant-owned row's, a Tenant's pk, or an id."""
    tenant_id = getattr(value, "tenant_id", None)
    if tenant_id is not None:
        return tenant_id
    return getattr(value, "pk", value)


def require_tenant_context(tenant: Any = None) -> uuid.UUID:
    """Return the active tenant context's id; raise TenantContextError if there is none.

    With `tenant` (a Tenant, a tenant-owned row or a tenant id), the active context must be
    that tenant's. Services call this instead of opening a context: only entry points open one.
    """
    current = _current_tenant.get()
    if current is None:
        raise TenantContextError(
            "no tenant context: a service runs only inside its own tenant context and never "
            "opens one. Open it at the entry point (middleware, TenantTask, staff scope, "
            "management command, test) with tenants.db.tenant_context(tenant_id)."
        )
    if tenant is not None:
        wanted = parse_tenant_id(_tenant_id_of(tenant))
        if wanted != current:
            raise TenantContextError(
                f"the active tenant context is {current}, but this work is for tenant {wanted}: "
                "run it inside its own tenant context"
            )
    return current


P = ParamSpec("P")
R = TypeVar("R")


@overload
def tenant_context_required(func: Callable[P, R]) -> Callable[P, R]: ...
@overload
def tenant_context_required(
    *, tenant: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def tenant_context_required(func=None, *, tenant=None):
    """Decorate a service that must run inside a tenant context its caller opened.

    `@tenant_context_required` requires any tenant context; `@tenant_context_required(
    tenant="document")` also requires it to be the tenant of that keyword argument (a Tenant,
    a tenant-owned row, or a tenant id).
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            require_tenant_context(kwargs.get(tenant) if tenant else None)
            return function(*args, **kwargs)

        return wrapper

    return decorate(func) if func is not None else decorate


def parse_tenant_id(tenant_id: uuid.UUID | str) -> uuid.UUID:
    """Return `tenant_id` as a UUID, or raise TenantContextError."""
    try:
        return tenant_id if isinstance(tenant_id, uuid.UUID) else uuid.UUID(str(tenant_id))
    except ValueError as exc:
        raise TenantContextError(f"not a tenant id: {tenant_id!r}") from exc


def _set_local(cursor, values: dict[str, str]) -> dict[str, str]:
    """Set transaction-local settings in one round trip; return their previous values."""
    names = list(values)
    reads = ", ".join("coalesce(current_setting(%s, true), '')" for _ in names)
    writes = ", ".join("set_config(%s, %s, true)" for _ in names)
    cursor.execute(
        f"SELECT {reads}, {writes}",
        [*names, *(part for name in names for part in (name, values[name]))],
    )
    return dict(zip(names, cursor.fetchone()[: len(names)], strict=True))


@contextmanager
def _local_settings(values: dict[str, str], using: str) -> Iterator[None]:
    connection = connections[using]
    nested = connection.in_atomic_block
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            previous = _set_local(cursor, values)
        yield
        # A released savepoint keeps SET LOCAL until the outer transaction ends: put the outer
        # context's values back. (On an exception the savepoint rollback restores them for us.)
        if nested:
            with connection.cursor() as cursor:
                _set_local(cursor, previous)


@contextmanager
def tenant_context(tenant_id: uuid.UUID | str, *, using: str = "default") -> Iterator[uuid.UUID]:
    """Run the block in one transaction scoped to `tenant_id`; yield the tenant id."""
    if not tenant_id:
        raise TenantContextError("a tenant context needs a tenant id")
    tenant_uuid = parse_tenant_id(tenant_id)
    token = _current_tenant.set(tenant_uuid)
    try:
        # Also switch the all-tenants mode off: a tenant context inside it sees one tenant.
        with _local_settings({TENANT_SETTING: str(tenant_uuid), ALL_TENANTS_SETTING: ""}, using):
            yield tenant_uuid
    finally:
        _current_tenant.reset(token)


@contextmanager
def all_tenants_context(*, using: str = "default") -> Iterator[None]:
    """Run the block in one transaction that may read (never write) every tenant's rows.

    Only for staff superusers in the explicit all-tenants mode; callers record the choice in the
    audit trail. Writes still need a tenant context: the policies' WITH CHECK refuses them.
    """
    token = _current_tenant.set(None)
    try:
        with _local_settings({ALL_TENANTS_SETTING: "on", TENANT_SETTING: ""}, using):
            yield
    finally:
        _current_tenant.reset(token)
