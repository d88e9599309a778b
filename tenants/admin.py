"""Staff admin for tenants, tenant users and the staff access audit trail."""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import password_validation
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.http import HttpRequest

from metis.admin_readonly import ReadOnlyAdminMixin
from tenants import replica, throttle, two_factor
from tenants.http import StaffRequest
from tenants.models import (
    SignInLockout,
    StaffSignInLockout,
    StaffTenantAccess,
    Tenant,
    TenantOwnedQuerySet,
    TenantUser,
)


def _staff(request: HttpRequest) -> StaffRequest:
    # ModelAdmin's hooks are typed with HttpRequest; on the staff host the middleware
    # (tenants.staff.scope_for) has added the chosen scope.
    return cast(StaffRequest, request)


class ReplicaChangelistMixin:
    """Serve the change list's GET from the read replica while it keeps up (tenants/replica.py):
    its counts and pages are the admin's heaviest reads. Actions (POST) stay on the primary."""

    def changelist_view(self, request: HttpRequest, extra_context=None):
        view = replica.replica_view(super().changelist_view)  # type: ignore[misc]
        return view(request, extra_context)


@admin.register(Tenant)
class TenantAdmin(ReplicaChangelistMixin, admin.ModelAdmin):
    list_display = ["name", "subdomain", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "subdomain"]
    readonly_fields = ["id", "created_at", "updated_at"]


def staff_scoped(queryset: TenantOwnedQuerySet, request: HttpRequest) -> TenantOwnedQuerySet:
    """`queryset` (tenant-owned rows) cut to the staff member's chosen tenant, every tenant in
    the all-tenants mode, else nothing."""
    scope = _staff(request)
    if scope.staff_tenant is not None:
        return queryset.for_tenant(scope.staff_tenant)
    if scope.staff_all_tenants:
        return queryset
    return queryset.none()


class TenantOwnedAdmin(ReplicaChangelistMixin, admin.ModelAdmin):
    """Admin for tenant-owned rows: visible only under the staff member's chosen tenant.

    RLS already hides other tenants' rows; this also scopes explicitly, stamps new rows with the
    chosen tenant and makes the all-tenants mode read-only.
    """

    def get_queryset(self, request: HttpRequest):
        return staff_scoped(cast(TenantOwnedQuerySet, super().get_queryset(request)), request)

    def changelist_view(self, request: HttpRequest, extra_context=None):
        scope = _staff(request)
        if scope.staff_tenant is None and not scope.staff_all_tenants:
            messages.info(request, "Choose a tenant context to see its rows.")
        return super().changelist_view(request, extra_context)

    def get_exclude(self, request: HttpRequest, obj=None):
        return [*(super().get_exclude(request, obj) or []), "tenant"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        chosen = _staff(request).staff_tenant is not None
        return chosen and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        chosen = _staff(request).staff_tenant is not None
        return chosen and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        chosen = _staff(request).staff_tenant is not None
        return chosen and super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj, form, change) -> None:
        if not change:
            obj.tenant = _staff(request).staff_tenant
        super().save_model(request, obj, form, change)


class TenantUserForm(forms.ModelForm):
    new_password = forms.CharField(
        required=False,
        strip=False,  # as every password field: spaces are part of it
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the password.",
    )

    class Meta:
        model = TenantUser
        fields = ["email", "name", "is_active", "is_admin", "metadata"]

    def clean_email(self) -> str:
        return TenantUser.normalize_email(self.cleaned_data["email"])

    def _post_clean(self) -> None:
        # As Django's user forms do: after the instance has this form's email and name, so the
        # similarity validator compares the password with the values being saved.
        super()._post_clean()  # type: ignore[misc]  # Django's hook; django-stubs omit it
        password = self.cleaned_data.get("new_password")
        if password:
            try:
                password_validation.validate_password(password, self.instance)
            except forms.ValidationError as error:
                self.add_error("new_password", error)

    def save(self, commit=True):
        user = super().save(commit=False)
        if self.cleaned_data.get("new_password"):
            user.set_password(self.cleaned_data["new_password"])
        elif not user.password:
            user.set_unusable_password()
        if commit:
            user.save()
        return user


@admin.register(TenantUser)
class TenantUserAdmin(TenantOwnedAdmin):
    form = TenantUserForm
    list_display = ["email", "name", "tenant", "is_active", "is_admin", "last_login", "created_at"]
    list_filter = ["is_active", "is_admin"]
    search_fields = ["email", "name"]
    list_select_related = ["tenant"]


@admin.register(StaffTenantAccess)
class StaffTenantAccessAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """An audit trail is append-only: no one edits or deletes it from the admin."""

    list_display = ["at", "staff", "tenant", "all_tenants", "ip_address", "path"]
    list_filter = ["all_tenants", "tenant"]
    list_select_related = ["staff", "tenant"]
    date_hierarchy = "at"


class LockoutAdmin(admin.ModelAdmin):
    """Sign-in lockouts: an audit trail, whose one action lifts a lock early."""

    list_display = [
        "locked_at",
        "scope",
        "account",
        "ip_address",
        "failures",
        "locked_until",
        "released_at",
        "released_by",
    ]
    list_filter = ["scope"]
    search_fields = ["account", "ip_address"]
    actions = ["release"]

    @admin.action(description="Release the selected locks", permissions=["release"])
    def release(self, request: HttpRequest, queryset) -> None:
        for lockout in queryset:
            throttle.lockout_release(lockout=lockout, staff=request.user)
        self.message_user(request, f"Released {len(queryset)} lock(s).", messages.SUCCESS)

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.is_staff and self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(SignInLockout)
class SignInLockoutAdmin(LockoutAdmin, TenantOwnedAdmin):
    list_display = [*LockoutAdmin.list_display, "tenant"]
    list_select_related = ["tenant", "released_by"]

    def has_release_permission(self, request: HttpRequest) -> bool:
        # Releasing writes the tenant's row: only under one chosen tenant, not all-tenants mode.
        return _staff(request).staff_tenant is not None and super().has_release_permission(request)


@admin.register(StaffSignInLockout)
class StaffSignInLockoutAdmin(LockoutAdmin):
    list_select_related = ["released_by"]


class StaffUserAdmin(UserAdmin):
    """Django's staff user admin, plus the lost-phone action (superusers only)."""

    actions = ["second_factors_remove"]

    @admin.action(
        description="Remove two-factor devices (they set up a new app at sign-in)",
        permissions=["second_factors_remove"],
    )
    def second_factors_remove(self, request: HttpRequest, queryset) -> None:
        removed = sum(two_factor.second_factors_remove(user=user) for user in queryset)
        self.message_user(request, f"Removed {removed} device(s).", messages.SUCCESS)

    def has_second_factors_remove_permission(self, request: HttpRequest) -> bool:
        # Whoever can remove them can sign in as that staff member with a password alone.
        return request.user.is_superuser and two_factor.recently_confirmed(request)


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
