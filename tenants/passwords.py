"""Tenant users' passwords: changed while signed in, or reset by an emailed link used once.

A reset link carries a random token (`secrets.token_urlsafe(32)`, 256 bits); the table keeps only
its SHA-256 (`PasswordResetToken`), under the tenant's RLS, so a token is found only on its own
tenant's host and reading the table gives no working link. The link works until
TENANT_PASSWORD_RESET_MINUTES after it was asked for, and once: setting the password spends it
and every other outstanding link of the user, as does a password change.

Every change of a password ends the user's other sessions: a tenant session holds a hash of the
password (tenants/auth.py) that then no longer matches.

Passwords are hashed (slow, by design) before a transaction opens and with no connection held.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from metis.events import recorder
from tenants import db, events
from tenants.models import PasswordResetToken, Tenant, TenantUser

TOKEN_BYTES = 32


def token_hash(token: str) -> str:
    """Return what is stored of a reset token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def reset_token_find(*, tenant: Tenant, token_hash: str) -> PasswordResetToken | None:
    """Return the tenant's usable reset token with this hash, with its user, or None."""
    db.require_tenant_context(tenant)
    return (
        PasswordResetToken.objects.for_tenant(tenant)
        .usable(timezone.now())
        .filter(token_hash=token_hash)
        .select_related("user")
        .first()
    )


@db.tenant_context_required(tenant="tenant")
def password_reset_request(*, tenant: Tenant, email: str, origin: str) -> bool:
    """Mail a reset link to the tenant's active user with this email; False if there is none.

    `origin` is the scheme and host the request came to (`https://acme.metis.example`), which
    the middleware resolved to this tenant. The mail leaves once the token has committed, and
    the raw token exists only in this process and in the mail.
    """
    user = (
        TenantUser.objects.for_tenant(tenant)
        .active()
        .filter(email=TenantUser.normalize_email(email))
        .first()
    )
    if user is None:
        return False
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = timezone.now()
    minutes = settings.TENANT_PASSWORD_RESET_MINUTES
    with transaction.atomic():
        # The user's spent and expired links are of no further use: keep the table small.
        PasswordResetToken.objects.for_tenant(tenant).filter(user=user).exclude(
            used_at__isnull=True, expires_at__gt=now
        ).delete()
        PasswordResetToken.objects.create(
            tenant=tenant,
            user=user,
            token_hash=token_hash(token),
            expires_at=now + timedelta(minutes=minutes),
        )
        recorder.record_event(tenant=tenant, event_type=events.PASSWORD_RESET_REQUESTED, user=user)
        path = reverse(
            "tenants:password-reset-link", kwargs={"token": token}, urlconf=settings.TENANT_URLCONF
        )
        context = {"tenant": tenant, "user": user, "link": origin + path, "minutes": minutes}
        transaction.on_commit(partial(_mail, to=user.email, context=context))
    return True


def _mail(*, to: str, context: dict) -> None:
    db.connection_release()  # a mail server may be slow: hold no connection meanwhile
    subject = render_to_string("tenants/email/password_reset_subject.txt", context)
    body = render_to_string("tenants/email/password_reset_body.txt", context)
    send_mail(" ".join(subject.split()), body, None, [to])


def password_reset_complete(*, token: PasswordResetToken, password: str) -> bool:
    """Set the password of the token's user and spend the token; False if it was spent already.

    Spends the user's other outstanding links too. The password must have passed the
    validators (the form's job).
    """
    db.require_tenant_context(token)
    user = token.user
    db.connection_release()
    user.set_password(password)  # the slow hash, before the transaction
    with transaction.atomic():
        now = timezone.now()
        # One conditional UPDATE: of two requests spending the same link, one wins.
        spent = (
            PasswordResetToken.objects.for_tenant(token.tenant_id)
            .filter(pk=token.pk, used_at__isnull=True, expires_at__gt=now)
            .update(used_at=now)
        )
        if not spent:
            return False
        _password_save(user, now=now)
        recorder.record_event(
            tenant=token.tenant_id, event_type=events.PASSWORD_RESET_COMPLETED, user=user
        )
    return True


def tenant_user_password_change(*, user: TenantUser, password: str) -> None:
    """Set `user`'s password (validated and, for a user, the old one checked by the form).

    Outstanding reset links of the user stop working.
    """
    db.require_tenant_context(user)
    db.connection_release()
    user.set_password(password)
    with transaction.atomic():
        _password_save(user, now=timezone.now())
        recorder.record_event(tenant=user.tenant_id, event_type=events.PASSWORD_CHANGED, user=user)


def _password_save(user: TenantUser, *, now) -> None:
    user.save(update_fields=["password"])
    PasswordResetToken.objects.for_tenant(user.tenant_id).filter(
        user=user, used_at__isnull=True
    ).update(used_at=now)
