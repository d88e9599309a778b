"""The tenant context: the one door to a tenant's rows.

Row-level security admits a row when its `tenant_id` is the tenant a valid *seal* names
(tenants/seal.py): a MAC over tenant, backend and transaction that only this code can compute.
Inside `tenant_context(tenant_id)`, every transaction on a connection of ours is sealed before
its first statement (tenants/postgres), and the seal dies with the transaction, so SQL injected
anywhere can neither switch tenant nor carry a seal to another transaction.

The context is a scope, not a long transaction: `tenant_context(t)` opens one short transaction
for its block (tasks, commands, service sections); `tenant_context(t, atomic=False)` only sets
the scope, and each statement or atomic block inside gets its own sealed transaction (requests:
the view's reading a body, hashing, S3 and rendering hold no connection). All-tenants reads are
not a setting at all: they go to another role (`staff_read`, tenants/routers.py).

The rule: entry points open a context (the middleware, the Celery task base `TenantTask`, the
staff scope, management commands, tests); services never open one, they require it with
`require_tenant_context()` or `@tenant_context_required`. So a service runs in exactly the
transaction and tenant its caller chose, and one forgotten entry point fails loudly instead of
quietly opening a context of its own.

Staff-account tables (users, their groups and permissions, two-factor devices) take a seal of
their own, per statement (tenants/accounts_seal.py): ORM saves and deletes set it themselves,
and `accounts_write()` is the door for the bulk writes that send no signals.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, overload

from django.db import connections, transaction

from tenants import pool

# The scope the sealing backend reads, and Python code (cache keys, logging) too.
_current_tenant: ContextVar[uuid.UUID | None] = ContextVar("current_tenant", default=None)
_all_tenants: ContextVar[bool] = ContextVar("all_tenants", default=False)

# The alias of the SELECT-only role the all-tenants policies admit (metis/settings.py).
ALL_TENANTS_ALIAS = "staff_read"


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


def connection_release(using: str = "default") -> None:
    """Give the connection back to the pool before slow work that needs no database."""
    pool.connection_release(using)


def parse_tenant_id(tenant_id: uuid.UUID | str) -> uuid.UUID:
    """Return `tenant_id` as a UUID, or raise TenantContextError."""
    try:
        return tenant_id if isinstance(tenant_id, uuid.UUID) else uuid.UUID(str(tenant_id))
    except ValueError as exc:
        raise TenantContextError(f"not a tenant id: {tenant_id!r}") from exc


@contextmanager
def tenant_context(
    tenant_id: uuid.UUID | str, *, using: str = "default", atomic: bool = True
) -> Iterator[uuid.UUID]:
    """Scope the block to `tenant_id`; yield the tenant id.

    With `atomic` (the default) the block is one transaction on `using`, and its connection goes
    back to the pool when it ends. Without, each statement or atomic block inside is its own
    sealed transaction: for code that talks to slow things between its queries.
    """
    if not tenant_id:
        raise TenantContextError("a tenant context needs a tenant id")
    tenant_uuid = parse_tenant_id(tenant_id)
    token = _current_tenant.set(tenant_uuid)
    # A tenant context inside the all-tenants mode sees one tenant.
    all_token = _all_tenants.set(False)
    try:
        if atomic:
            with transaction.atomic(using=using):
                yield tenant_uuid
        else:
            yield tenant_uuid
    finally:
        _all_tenants.reset(all_token)
        _current_tenant.reset(token)
    if atomic:
        pool.connection_release(using)


@contextmanager
def all_tenants_context(*, atomic: bool = False, using: str = ALL_TENANTS_ALIAS) -> Iterator[None]:
    """Read (never write) every tenant's rows in the block, through the staff read role.

    Only for staff superusers in the explicit all-tenants mode and for system jobs (exports,
    reconcile); callers record the choice in the audit trail. ORM reads of tenant tables go to
    the `staff_read` alias (tenants/routers.py), a SELECT-only role in read-only transactions;
    raw SQL uses `connections[ALL_TENANTS_ALIAS]`. With `atomic`, the block is one transaction
    there: one snapshot of every table (exports); `using` names the staff read role's alias on a
    replica instead (tenants/replica.py).
    """
    token = _current_tenant.set(None)
    all_token = _all_tenants.set(True)
    try:
        if atomic:
            with transaction.atomic(using=using):
                yield
        else:
            yield
    finally:
        _all_tenants.reset(all_token)
        _current_tenant.reset(token)


def all_tenants_active() -> bool:
    """True inside all_tenants_context (and not inside a tenant context nested in it)."""
    return _all_tenants.get()


@contextmanager
def accounts_write(*, using: str = "default") -> Iterator[None]:
    """Let the block's statements write staff-account tables (tenants/accounts_seal.py).

    Only for writes that send no model signals: `QuerySet.update()`, `bulk_create()`, raw SQL.
    Saves, deletes and many-to-many changes seal themselves. Every statement inside is sealed,
    so keep the block to the write itself: never run SQL built from input in it.
    """
    connection = connections[using]
    connection.account_write_blocks += 1  # type: ignore[attr-defined]  # tenants.postgres
    try:
        yield
    finally:
        connection.account_write_blocks -= 1  # type: ignore[attr-defined]
