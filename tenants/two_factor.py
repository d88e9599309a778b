"""Staff two-factor: an authenticator app (TOTP) and single-use backup codes, through django-otp.

Every staff member passes a second factor at sign-in; the admin refuses sessions that did not
(metis.admin_site). Reading every tenant (all-tenants mode) and the SQL workbench also want a
*recent* confirmation, within STAFF_RECONFIRM_MINUTES: a session left open, or stolen, does not
reach every tenant's data on the strength of a sign-in hours ago.
"""

from __future__ import annotations

import time
from base64 import b32encode
from functools import wraps
from urllib.parse import urlencode

import segno
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import db

CONFIRMED_AT_KEY = "staff_second_factor_at"
BACKUP_CODES = 10
APP_DEVICE_NAME = "Authenticator app"
BACKUP_DEVICE_NAME = "Backup codes"


def has_second_factor(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def app_device_pending(user) -> TOTPDevice:
    """Return the user's unconfirmed app device, made once so the QR code stays put on reload."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name=APP_DEVICE_NAME, confirmed=False)


def qr_code_svg(device: TOTPDevice) -> str:
    """Return the device's otpauth:// URL as an inline SVG (no script, no style: CSP allows it)."""
    return segno.make(device.config_url, error="m").svg_inline(scale=4, border=2)


def device_secret(device: TOTPDevice) -> str:
    """Return the key as an app asks for it when typed in: base32, in groups of four."""
    text = b32encode(device.bin_key).decode()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def app_device_confirm(*, device: TOTPDevice, code: str) -> list[str] | None:
    """Confirm the app device with a code it made; return fresh backup codes, or None."""
    if not device.verify_token(code.strip()):
        return None
    with transaction.atomic():
        TOTPDevice.objects.filter(user=device.user, confirmed=True).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        return backup_codes_renew(user=device.user)


def backup_codes_renew(*, user) -> list[str]:
    """Replace the user's backup codes with a new set and return them, to be shown once."""
    with transaction.atomic():
        device, _ = StaticDevice.objects.get_or_create(user=user, name=BACKUP_DEVICE_NAME)
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _ in range(BACKUP_CODES)]
        with db.accounts_write():  # bulk_create sends no signal to seal it
            StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


def second_factors_remove(*, user) -> int:
    """Remove every device of the user (a lost phone); the next sign-in enrols anew."""
    apps, backups = TOTPDevice.objects.filter(user=user), StaticDevice.objects.filter(user=user)
    with transaction.atomic():
        removed = apps.count() + backups.count()
        apps.delete()
        backups.delete()  # and their codes
    return removed


def backup_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def device_for_code(*, user, code: str):
    """Return the user's confirmed device that accepts `code` (app code or backup code), or None.

    Each device counts its own failures and refuses for a growing time after them (django-otp's
    throttling); a used backup code is deleted, an app code cannot be replayed.
    """
    code = code.strip().replace(" ", "")
    devices = [
        *TOTPDevice.objects.filter(user=user, confirmed=True),
        *StaticDevice.objects.filter(user=user, confirmed=True),
    ]
    with transaction.atomic():
        for device in devices:
            if device.verify_token(code):
                return device
    return None


def second_factor_record(request: HttpRequest, device) -> None:
    """Mark this (signed-in) session as having passed `device`, now."""
    otp_login(request, device)
    request.session[CONFIRMED_AT_KEY] = time.time()


def recently_confirmed(request: HttpRequest) -> bool:
    confirmed_at = request.session.get(CONFIRMED_AT_KEY, 0)
    return time.time() - confirmed_at < settings.STAFF_RECONFIRM_MINUTES * 60


def confirm_url(request: HttpRequest, *, next_url: str | None = None) -> str:
    path = next_url or request.get_full_path()
    return f"{reverse('admin:tenants:two-factor-confirm')}?{urlencode({'next': path})}"


def recent_second_factor_required(view):
    """Send a staff member whose last second factor is older than the window to confirm it."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not recently_confirmed(request):
            return redirect(confirm_url(request))
        return view(request, *args, **kwargs)

    return wrapper
