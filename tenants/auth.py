"""Sign-in for tenant users on their tenant's host, kept apart from staff (`auth.User`).

The session remembers the tenant as well as the user: a session only counts on the host of the
tenant that created it, and the user is looked up under that tenant's RLS context.
"""

from __future__ import annotations

from django.contrib.auth.hashers import make_password
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from metis.events import recorder
from tenants import db, events
from tenants.http import MetisRequest, TenantRequest
from tenants.models import Tenant, TenantUser

USER_KEY = "_tenant_user_id"
TENANT_KEY = "_tenant_id"
HASH_KEY = "_tenant_user_hash"


def _session_hash(user: TenantUser) -> str:
    # Changing the password ends every other session of that user.
    return salted_hmac("tenants.auth", user.password, algorithm="sha256").hexdigest()


def tenant_user_authenticate(*, tenant: Tenant, email: str, password: str) -> TenantUser | None:
    """Return the tenant's active user with this email and password, or None."""
    user = (
        TenantUser.objects.for_tenant(tenant)
        .filter(email=TenantUser.normalize_email(email), is_active=True)
        .first()
    )
    db.connection_release()  # hashing is slow: hold no connection meanwhile
    if user is None:
        make_password(password)  # spend the same time as a real check: no user enumeration
        return None
    return user if user.check_password(password) else None


def tenant_login_failed(request: TenantRequest, *, email: str) -> None:
    """Record a failed sign-in (the email's domain only: no addresses in analytics)."""
    domain = email.rsplit("@", 1)[-1].lower()[:100] if "@" in email else ""
    recorder.record_event(
        tenant=request.tenant, event_type=events.SIGN_IN_FAILED, data={"email_domain": domain}
    )


def tenant_login(request: TenantRequest, user: TenantUser) -> None:
    if user.tenant_id != request.tenant.pk:
        raise PermissionError("a user signs in only on their own tenant's host")
    request.session.cycle_key()  # no session fixation
    request.session[USER_KEY] = str(user.pk)
    request.session[TENANT_KEY] = str(user.tenant_id)
    request.session[HASH_KEY] = _session_hash(user)
    TenantUser.objects.filter(pk=user.pk).update(last_login=timezone.now())
    request.tenant_user = user
    recorder.record_event(tenant=request.tenant, event_type=events.SIGN_IN, user=user)


def tenant_logout(request: TenantRequest) -> None:
    user = getattr(request, "tenant_user", None)
    if user is not None:
        recorder.record_event(tenant=request.tenant, event_type=events.SIGN_OUT, user=user)
    request.session.flush()
    request.tenant_user = None


def get_tenant_user(request: MetisRequest) -> TenantUser | None:
    """Return the signed-in user of this request's tenant, or None."""
    session = request.session
    tenant = getattr(request, "tenant", None)
    if tenant is None or session.get(TENANT_KEY) != str(tenant.pk):
        return None
    user_id = session.get(USER_KEY)
    user = (
        TenantUser.objects.for_tenant(tenant).active().filter(pk=user_id).first()
        if user_id
        else None
    )
    if user is None or not constant_time_compare(session.get(HASH_KEY, ""), _session_hash(user)):
        return None
    return user


def tenant_session_refresh(request: TenantRequest, user: TenantUser) -> None:
    """Keep this session signed in after `user` changed their password; end the others.

    Every session stores a hash of the password (HASH_KEY): the user's other sessions no longer
    match it and are signed out at their next request. This one takes the new hash, under a new
    key, as Django's update_session_auth_hash does for staff.
    """
    if request.session.get(USER_KEY) != str(user.pk):
        raise PermissionError("only the signed-in user's own session is refreshed")
    request.session.cycle_key()
    request.session[HASH_KEY] = _session_hash(user)
    request.tenant_user = user
