"""Tenant password pages: reset by an emailed link, and change while signed in.

The reset takes four pages, as Django's own views do: ask for the email; "if an account exists
we have sent a link" (the same page, after the same work, whatever the email); the link, which
puts the token's hash in the session and redirects to a URL without the token (so it never
leaves in a Referer header); and the new password, after which the user signs in.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from tenants import auth, client_ip, db, passwords, tasks, throttle
from tenants.http import TenantRequest
from tenants.views import tenant_login_required

# The session holds the token's hash, never the token: the hash is in the table anyway.
RESET_SESSION_KEY = "_tenant_password_reset"


class PasswordResetRequestForm(forms.Form):
    email = forms.EmailField(max_length=254)


@never_cache
def password_reset_request_view(request: TenantRequest) -> HttpResponse:
    form = PasswordResetRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        lock = throttle.password_reset_limit(
            tenant=request.tenant, email=form.cleaned_data["email"], ip=client_ip.client_ip(request)
        )
        if lock is not None:
            form.add_error(None, lock.message())
            response = render(
                request, "tenants/password_reset_request.html", {"form": form}, status=429
            )
            response["Retry-After"] = str(lock.retry_after())
            return response
        # The task looks the email up: known or not, this request does the same (no enumeration
        # by content or by time). The host is this tenant's, as the middleware resolved it.
        tasks.enqueue_for_tenant(
            tasks.password_reset_request,
            request.tenant,
            email=form.cleaned_data["email"],
            origin=_origin(request),
        )
        return redirect("tenants:password-reset-sent")
    status = 400 if request.method == "POST" else 200
    return render(request, "tenants/password_reset_request.html", {"form": form}, status=status)


def _origin(request: TenantRequest) -> str:
    """Return the scheme and host the link in the mail points at: this tenant's host."""
    # Behind a proxy that ends TLS, request.scheme is "http" unless SECURE_PROXY_SSL_HEADER is
    # set; a site whose cookies are HTTPS-only is served over HTTPS, so its links must be too
    # (an http:// link would carry the token in clear before any redirect).
    secure = request.is_secure() or settings.SESSION_COOKIE_SECURE
    return f"{'https' if secure else 'http'}://{request.get_host()}"


def password_reset_sent_view(request: TenantRequest) -> HttpResponse:
    return render(request, "tenants/password_reset_sent.html")


def _link_unusable(request: TenantRequest) -> HttpResponse:
    request.session.pop(RESET_SESSION_KEY, None)
    return render(request, "tenants/password_reset_unusable.html", status=410)


@never_cache
def password_reset_link_view(request: TenantRequest, token: str) -> HttpResponse:
    found = passwords.reset_token_find(
        tenant=request.tenant, token_hash=passwords.token_hash(token)
    )
    if found is None:
        return _link_unusable(request)
    request.session[RESET_SESSION_KEY] = found.token_hash
    return redirect("tenants:password-reset-set")


@never_cache
@sensitive_post_parameters()
def password_reset_set_view(request: TenantRequest) -> HttpResponse:
    hashed = request.session.get(RESET_SESSION_KEY)
    found = passwords.reset_token_find(tenant=request.tenant, token_hash=hashed) if hashed else None
    if found is None:
        return _link_unusable(request)
    form = SetPasswordForm(found.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        if not passwords.password_reset_complete(
            token=found, password=form.cleaned_data["new_password1"]
        ):
            return _link_unusable(request)
        request.session.pop(RESET_SESSION_KEY, None)
        messages.success(request, "Your password is set. Sign in with it.")
        return redirect("tenants:login")
    status = 400 if request.method == "POST" else 200
    return render(request, "tenants/password_reset_set.html", {"form": form}, status=status)


@never_cache
@sensitive_post_parameters()
@tenant_login_required
def password_change_view(request: TenantRequest) -> HttpResponse:
    user = request.tenant_user
    assert user is not None  # tenant_login_required
    # Django's form works with any AbstractBaseUser; django-stubs type it for auth.User.
    form = PasswordChangeForm(user, request.POST or None)  # type: ignore[arg-type]
    if request.method == "POST":
        # The current password is a sign-in by another door: the same throttle guards it.
        ip = client_ip.client_ip(request)
        lock = throttle.sign_in_lock(tenant=request.tenant, account=user.email, ip=ip)
        if lock is not None:
            throttle.sign_in_failed(tenant=request.tenant, account=user.email, ip=ip, refused=True)
            context = {"form": PasswordChangeForm(user), "lock_message": lock.message()}  # type: ignore[arg-type]
            return render(request, "tenants/password_change.html", context, status=429)
        db.connection_release()  # the form checks the old password: a slow hash
        if "old_password" in form.errors:
            throttle.sign_in_failed(tenant=request.tenant, account=user.email, ip=ip)
        elif form.is_valid():
            passwords.tenant_user_password_change(
                user=user, password=form.cleaned_data["new_password1"]
            )
            auth.tenant_session_refresh(request, user)
            messages.success(
                request, "Your password is changed. Your other sessions have been signed out."
            )
            return redirect("tenants:password-change")
    status = 400 if request.method == "POST" else 200
    return render(request, "tenants/password_change.html", {"form": form}, status=status)
