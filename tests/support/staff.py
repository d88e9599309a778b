"""Staff sign-in for tests: a real authenticator app (pyotp), or a session marked as verified."""

from __future__ import annotations

import time
from base64 import b32encode

import pyotp
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import two_factor


def authenticator_app(user) -> pyotp.TOTP:
    """Enrol a confirmed app device for `user`; return a TOTP that computes its codes, as a
    phone would (pyotp, independently of django-otp)."""
    device = TOTPDevice.objects.create(user=user, name="test app", confirmed=True)
    return pyotp.TOTP(b32encode(device.bin_key).decode())


def next_code(app: pyotp.TOTP, *, steps_ahead: int = 0) -> str:
    """A code for the current (or a later) 30-second step: a used step is never accepted again."""
    return app.at(time.time() + 30 * steps_ahead)


def sign_in(client: Client, *, username: str, password: str, app: pyotp.TOTP, steps_ahead=0):
    """Sign in through both steps; return the last response."""
    response = client.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}
    )
    assert response.status_code == 302, response.content
    return client.post(response["Location"], {"code": next_code(app, steps_ahead=steps_ahead)})


def mark_verified(client: Client, user) -> None:
    """Give a force_login'ed client's session a passed second factor, confirmed just now."""
    device = TOTPDevice.objects.create(user=user, name="test app", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[two_factor.CONFIRMED_AT_KEY] = time.time()
    session.save()
