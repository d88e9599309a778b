"""Staff sign-in to the admin: password, then a second factor (or enrolling one), throttled.

The password step does not sign in: it remembers, for a few minutes, whose password was right.
Only the second factor (an app code or a backup code; or, for a staff member without one, the
first code of a newly enrolled app) signs the session in, so no session ever holds a staff user
who passed the password alone. Failures of either step count towards the sign-in throttle.
"""

from __future__ import annotations

import time
from functools import wraps
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme

from tenants import client_ip, throttle, two_factor

PENDING_KEY = "staff_sign_in_pending"
PENDING_SECONDS = 5 * 60


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )


def _next_url(request: HttpRequest) -> str:
    next_url = request.POST.get("next") or request.GET.get("next", "")
    allowed = url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()})
    return next_url if next_url and allowed else reverse("admin:index")


def _step_url(name: str, request: HttpRequest) -> str:
    return f"{reverse(name)}?{urlencode({'next': _next_url(request)})}"


def _pending_user(request: HttpRequest):
    """Return the staff member whose password was right a moment ago in this session, or None."""
    pending = request.session.get(PENDING_KEY)
    if not pending or time.time() - pending["at"] > PENDING_SECONDS:
        return None
    user = (
        auth.get_user_model()
        .objects.filter(pk=pending["user"], is_active=True, is_staff=True)
        .first()
    )
    # A password changed meanwhile voids the pending step, as it voids sessions.
    if user is None or not constant_time_compare(pending["hash"], user.get_session_auth_hash()):
        return None
    return user


def _lock_refused(request: HttpRequest, *, account: str) -> throttle.Lock | None:
    ip = client_ip.client_ip(request)
    lock = throttle.sign_in_lock(tenant=None, account=account, ip=ip)
    if lock is not None:
        throttle.sign_in_failed(tenant=None, account=account, ip=ip, refused=True)
    return lock


def _failed(request: HttpRequest, *, account: str) -> throttle.Lock | None:
    return throttle.sign_in_failed(tenant=None, account=account, ip=client_ip.client_ip(request))


def _code_try(request: HttpRequest, *, account: str, code: str, check):
    """Check a code under the throttle: return (what `check(code)` gave, the lock in force).

    A lock in force means no check; a failed check counts as a failed sign-in."""
    lock = _lock_refused(request, account=account)
    if lock is not None:
        return None, lock
    result = check(code)
    return result, (_failed(request, account=account) if result is None else None)


def _render(request, template: str, context: dict, *, site: AdminSite, lock=None):
    context = {**site.each_context(request), "next": _next_url(request), **context}
    if lock is not None:
        context["lock_message"] = lock.message()
    response = TemplateResponse(request, template, context, status=429 if lock else 200)
    if lock is not None:
        response["Retry-After"] = str(lock.retry_after())
    return response


def login_view(request: HttpRequest, *, site: AdminSite) -> HttpResponse:
    """Step one: the password. Right, it leads to the second factor, never into the admin."""
    if request.method != "POST":
        form = AdminAuthenticationForm(request)
        return _render(request, "admin/two_factor/login.html", {"form": form}, site=site)
    username = request.POST.get("username", "")
    lock = _lock_refused(request, account=username)
    if lock is not None:  # no password check (and no hashing) while locked
        form = AdminAuthenticationForm(request)
        return _render(request, "admin/two_factor/login.html", {"form": form}, site=site, lock=lock)
    form = AdminAuthenticationForm(request, data=request.POST)
    if not form.is_valid():
        lock = _failed(request, account=username)
        if lock is not None:
            form = AdminAuthenticationForm(request)
        context = {"form": form}
        return _render(request, "admin/two_factor/login.html", context, site=site, lock=lock)
    user = form.get_user()
    throttle.sign_in_succeeded(tenant=None, account=username)
    request.session.cycle_key()
    request.session[PENDING_KEY] = {
        "user": user.pk,
        "backend": user.backend,
        "hash": user.get_session_auth_hash(),
        "at": time.time(),
    }
    step = (
        "admin:tenants:two-factor-verify"
        if two_factor.has_second_factor(user)
        else "admin:tenants:two-factor-setup"
    )
    return redirect(_step_url(step, request))


def _sign_in(request: HttpRequest, user, device) -> None:
    backend = request.session[PENDING_KEY]["backend"]
    auth.login(request, user, backend=backend)  # a new session key, as at every sign-in
    two_factor.second_factor_record(request, device)
    request.session.pop(PENDING_KEY, None)


def _password_step_required(view):
    """Run `view` with the staff member whose password step passed, or send them back to it."""

    @wraps(view)
    def wrapper(request: HttpRequest, *, site: AdminSite) -> HttpResponse:
        user = _pending_user(request)
        if user is None:
            messages.info(request, "Sign in with your password first.")
            return redirect(_step_url("admin:login", request))
        return view(request, user, site=site)

    return wrapper


@_password_step_required
def verify_view(request: HttpRequest, user, *, site: AdminSite) -> HttpResponse:
    """Step two, for staff with an app: a code from it, or a backup code."""
    form = CodeForm(request.POST or None)
    lock = None
    if request.method == "POST" and form.is_valid():
        device, lock = _code_try(
            request,
            account=user.get_username(),
            code=form.cleaned_data["code"],
            check=lambda code: two_factor.device_for_code(user=user, code=code),
        )
        if device is not None:
            _sign_in(request, user, device)
            return redirect(_next_url(request))
        if lock is None:
            form.add_error("code", "That code is not right, or was already used.")
    context = {"form": form, "title": "Two-factor sign-in", "staff": user}
    return _render(request, "admin/two_factor/verify.html", context, site=site, lock=lock)


@_password_step_required
def setup_view(request: HttpRequest, user, *, site: AdminSite) -> HttpResponse:
    """Step two, for staff without an app: enrol one, then keep the backup codes."""
    if two_factor.has_second_factor(user):
        return redirect(_step_url("admin:tenants:two-factor-verify", request))
    device = two_factor.app_device_pending(user)
    form = CodeForm(request.POST or None)
    lock = None
    if request.method == "POST" and form.is_valid():
        codes, lock = _code_try(
            request,
            account=user.get_username(),
            code=form.cleaned_data["code"],
            check=lambda code: two_factor.app_device_confirm(device=device, code=code),
        )
        if codes is not None:
            _sign_in(request, user, device)
            shown = {
                "codes": codes,
                "title": "Your backup codes",
                "continue_url": _next_url(request),
            }
            return _render(request, "admin/two_factor/backup_codes.html", shown, site=site)
        if lock is None:
            form.add_error("code", "That code is not right: check the app shows Metis Storage.")
    context: dict[str, object] = {
        "form": form,
        "title": "Set up two-factor sign-in",
        "staff": user,
        "qr_svg": two_factor.qr_code_svg(device),
        "secret": two_factor.device_secret(device),
    }
    return _render(request, "admin/two_factor/setup.html", context, site=site, lock=lock)


def confirm_view(request: HttpRequest, *, site: AdminSite) -> HttpResponse:
    """Confirm the second factor again (all-tenants mode and the workbench ask for it)."""
    form = CodeForm(request.POST or None)
    lock = None
    account = request.user.get_username()
    if request.method == "POST" and form.is_valid():
        device, lock = _code_try(
            request,
            account=account,
            code=form.cleaned_data["code"],
            check=lambda code: two_factor.device_for_code(user=request.user, code=code),
        )
        if device is not None:
            two_factor.second_factor_record(request, device)
            return redirect(_next_url(request))
        if lock is None:
            form.add_error("code", "That code is not right, or was already used.")
    context = {
        "form": form,
        "title": "Confirm it is you",
        "minutes": settings.STAFF_RECONFIRM_MINUTES,
    }
    return _render(request, "admin/two_factor/confirm.html", context, site=site, lock=lock)


def backup_codes_view(request: HttpRequest, *, site: AdminSite) -> HttpResponse:
    """Show the staff member's two-factor state; on POST, replace the backup codes."""
    codes = None
    if request.method == "POST":
        codes = two_factor.backup_codes_renew(user=request.user)
    context = {
        "title": "Two-factor sign-in",
        "codes": codes,
        "remaining": two_factor.backup_codes_left(request.user),
        "continue_url": reverse("admin:index"),
    }
    return _render(request, "admin/two_factor/backup_codes.html", context, site=site)
