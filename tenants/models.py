"""Tenants, the tenant-owned model base, tenant users and the staff access audit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Self

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.postgres.functions import RandomUUID
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Now

from tenants.foreign_keys import TenantForeignKey, TenantKey
from tenants.rls import RowLevelSecurity

# A DNS label: lowercase letters, digits and inner hyphens, 1-63 characters.
DNS_LABEL = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
RESERVED_SUBDOMAINS = frozenset({"admin", "www", "api", "static", "mail"})


def validate_subdomain(value: str) -> None:
    RegexValidator(DNS_LABEL, "Use lowercase letters, digits and inner hyphens (a DNS label).")(
        value
    )
    if value in RESERVED_SUBDOMAINS:
        from django.core.exceptions import ValidationError

        raise ValidationError(f"“{value}” is reserved.")


class TenantQuerySet(models.QuerySet):
    def active(self) -> Self:
        return self.filter(is_active=True)


class Tenant(models.Model):
    """A lender using Metis. Not tenant-owned itself: it is the registry hosts resolve against."""

    id = models.UUIDField(primary_key=True, db_default=RandomUUID(), editable=False)
    name = models.CharField(max_length=255)
    subdomain = models.CharField(max_length=100, unique=True, validators=[validate_subdomain])
    is_active = models.BooleanField(default=True, db_default=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    # The subdomain as last read from the database: a rename must also drop the cached lookup
    # of the old name (tenants/lookup.py). None on a tenant not read from the database.
    stored_subdomain: str | None = None

    class Meta:
        db_table = "tenants"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.subdomain})"

    @classmethod
    def from_db(cls, db, field_names, values, **kwargs) -> Self:
        tenant = super().from_db(db, field_names, values, **kwargs)
        tenant.stored_subdomain = tenant.__dict__.get("subdomain")
        return tenant


class TenantOwnedQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant | uuid.UUID | str) -> Self:
        """Scope explicitly to one tenant; RLS is the guard, this is the filter."""
        return self.filter(tenant_id=getattr(tenant, "pk", tenant))


class TenantOwnedModel(models.Model):
    """Base of every model holding a tenant's rows: the tenant column and its RLS policies."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")

    # True for tables computed from other tenant tables (kept by triggers): a tenant export
    # leaves them out, and a restore rebuilds them as it puts the rows they count back.
    derived_rows = False

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        abstract = True
        constraints = [RowLevelSecurity(name="%(app_label)s_%(class)s_rls", sealed=True)]


class TenantUserQuerySet(TenantOwnedQuerySet):
    def active(self) -> Self:
        return self.filter(is_active=True)


class TenantUser(TenantOwnedModel, AbstractBaseUser):
    """A lender's user, signing in on the tenant's own host. Staff are `auth.User` instead.

    The same email in two tenants is two separate accounts.
    """

    id = models.UUIDField(primary_key=True, db_default=RandomUUID(), editable=False)
    # The (tenant_id, email) unique index below leads with tenant_id: no separate FK index.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    email = models.EmailField(max_length=255)
    name = models.CharField(max_length=255)
    is_active = models.BooleanField(default=True, db_default=True)
    # The tenant's own administrators, granted by staff in the admin (no tenant page can): they
    # read the tenant's audit log (audit/views.py) and export any subject's data
    # (privacy/export_views.py).
    is_admin = models.BooleanField(default=False, db_default=False)
    metadata = models.JSONField(default=dict, db_default={}, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"

    # A narrower manager than TenantOwnedModel's; django-stubs reads managers as class variables
    # and refuses any redefinition, even a compatible one.
    objects = TenantUserQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        db_table = "users"
        ordering = ["email"]
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            # Its unique index on (tenant_id, email) is the spec's idx_users_tenant_email: every
            # lookup by email filters by tenant first. A second identical index would only cost.
            models.UniqueConstraint(fields=["tenant", "email"], name="users_tenant_email_key"),
            TenantKey(name="users_tenant_id_key"),
        ]
        indexes = [GinIndex(fields=["metadata"], name="idx_user_metadata")]

    def __str__(self) -> str:
        return self.email

    @staticmethod
    def normalize_email(email: str) -> str:
        return email.strip().lower()


class PasswordResetTokenQuerySet(TenantOwnedQuerySet):
    def usable(self, now: datetime) -> Self:
        """Tokens not used, not expired at `now`, of a user who is still active."""
        return self.filter(used_at__isnull=True, expires_at__gt=now, user__is_active=True)


class PasswordResetToken(TenantOwnedModel):
    """A password-reset link mailed to a tenant user; it works once, until `expires_at`.

    Only the SHA-256 of the link's token is stored: whoever reads the table (one SQL injection, a
    backup) holds nothing they can click. SHA-256 without a salt or a slow hash is enough for a
    32-byte random token; slow hashes are for secrets people choose. Made and spent by
    tenants/passwords.py.
    """

    id = models.BigAutoField(primary_key=True)
    # The (tenant_id, token_hash) unique index below leads with tenant_id: no separate FK index.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    user = models.ForeignKey(
        TenantUser, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    objects = PasswordResetTokenQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        db_table = "password_reset_tokens"
        ordering = ["-created_at"]
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            # Per tenant, not global: a lookup is always by tenant, and a uniqueness across
            # tenants would answer for other tenants' rows.
            models.UniqueConstraint(
                fields=["tenant", "token_hash"], name="password_reset_tokens_tenant_hash_key"
            ),
            TenantForeignKey(field="user", name="password_reset_tokens_user_same_tenant"),
        ]

    def __str__(self) -> str:
        return f"reset for {self.user_id} until {self.expires_at:%Y-%m-%d %H:%M}"


class StaffTenantAccess(models.Model):
    """Audit: a staff member chose to view one tenant's rows, or all tenants' (tenant empty)."""

    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    all_tenants = models.BooleanField(default=False)
    path = models.CharField(max_length=500, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "staff_tenant_access"
        ordering = ["-at"]
        verbose_name_plural = "staff tenant access"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(all_tenants=True, tenant__isnull=True)
                | models.Q(all_tenants=False, tenant__isnull=False),
                name="staff_access_one_tenant_or_all",
            )
        ]
        indexes = [models.Index(fields=["tenant", "-at"], name="staff_access_tenant_at")]

    def __str__(self) -> str:
        target = "all tenants" if self.all_tenants else str(self.tenant)
        return f"{self.staff} → {target} at {self.at:%Y-%m-%d %H:%M}"


class LockoutScope(models.TextChoices):
    ACCOUNT = "account", "account"
    ADDRESS = "address", "client address"


class LockoutFields(models.Model):
    """Audit: sign-in was locked for an account or a client address (tenants.throttle)."""

    scope = models.CharField(max_length=10, choices=LockoutScope.choices)
    # The email or username that was tried (it may name no account): empty for an address lock.
    account = models.CharField(max_length=255, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    failures = models.PositiveIntegerField()
    locked_at = models.DateTimeField(db_default=Now(), editable=False)
    locked_until = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        abstract = True
        ordering = ["-locked_at"]

    def __str__(self) -> str:
        subject = self.account if self.scope == LockoutScope.ACCOUNT else self.ip_address
        return f"{self.get_scope_display()} {subject} locked at {self.locked_at:%Y-%m-%d %H:%M}"


class SignInLockout(TenantOwnedModel, LockoutFields):
    """A lockout on a tenant's sign-in page: the tenant's row, under its RLS."""

    class Meta(TenantOwnedModel.Meta, LockoutFields.Meta):
        db_table = "sign_in_lockouts"
        indexes = [models.Index(fields=["tenant", "-locked_at"], name="lockouts_tenant_locked")]


class StaffSignInLockout(LockoutFields):
    """A lockout on the staff admin's sign-in page."""

    class Meta(LockoutFields.Meta):
        db_table = "staff_sign_in_lockouts"
