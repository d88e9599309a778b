"""Sentry: optional, and nothing personal or secret leaves in an event."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metis import logs, sentry

ROOT = Path(__file__).resolve().parents[2]


def test_event_keeps_ids_and_drops_cookies_body_query_and_other_headers():
    event = {
        "request": {
            "url": "http://acme.localhost/password-reset/",
            "query_string": "token=secret-token",
            "cookies": {"sessionid": "secret-session"},
            "data": {"email": "alice@acme.example"},
            "headers": {
                "Cookie": "sessionid=secret-session",
                "Authorization": "Bearer secret",
                "User-Agent": "curl/8",
                "X-Request-ID": "req-1",
            },
        },
        "user": {"id": "42", "email": "alice@acme.example", "ip_address": "10.0.0.1"},
    }
    with logs.bound(request_id="req-1", tenant_id="t-1"):
        scrubbed = sentry.scrub(event)

    text = repr(scrubbed)
    assert "secret" not in text and "alice@acme.example" not in text and "10.0.0.1" not in text
    assert scrubbed["request"]["headers"] == {"User-Agent": "curl/8", "X-Request-ID": "req-1"}
    assert scrubbed["user"] == {"id": "42"}
    assert scrubbed["tags"] == {"request_id": "req-1", "tenant_id": "t-1"}


def test_sentry_dsn_without_sentry_sdk_stops_start_up_with_the_fix():
    try:
        import sentry_sdk  # noqa: F401

        pytest.skip("sentry-sdk is installed here")
    except ImportError:
        pass
    completed = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "metis.settings",
            "SENTRY_DSN": "https://key@sentry.example/1",
        },
        capture_output=True,
        text=True,
    )
    assert completed.returncode != 0
    assert "pip install sentry-sdk" in completed.stderr


def test_no_sentry_dsn_no_sentry():
    assert "sentry_sdk" not in sys.modules
