"""Errors to Sentry, when SENTRY_DSN is set: Django and Celery integrations, no personal data.

sentry-sdk is not in requirements.txt: a deployment that sets SENTRY_DSN installs it
(`pip install sentry-sdk`), and start-up fails with that instruction if it is missing.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

# Request headers worth sending; cookies, Authorization and the rest are dropped.
_HEADERS_KEPT = {"user-agent", "content-type", "content-length", "x-request-id", "host"}


def scrub(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Strip what could identify a person or carry a secret; tag the event with the log context.

    Sentry's own `send_default_pii=False` already leaves out cookies, the user's address and
    name; this also drops the query string and body (reset tokens, KYC form fields), every
    header not listed above, and the user down to an id.
    """
    from metis import logs

    request = event.get("request")
    if isinstance(request, dict):
        request.pop("cookies", None)
        request.pop("data", None)
        request.pop("query_string", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: value for name, value in headers.items() if name.lower() in _HEADERS_KEPT
            }
    user = event.get("user")
    if isinstance(user, dict):
        event["user"] = {"id": user["id"]} if "id" in user else {}
    tags = event.setdefault("tags", {})
    for name, value in logs.current().items():
        tags.setdefault(name, value)
    return event


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float) -> None:
    """Start the Sentry client with the Django and Celery integrations."""
    try:
        import sentry_sdk
        from sentry_sdk.integrations.celery import CeleryIntegration
        from sentry_sdk.integrations.django import DjangoIntegration
    except ImportError as exc:
        raise ImproperlyConfigured(
            "SENTRY_DSN is set but sentry-sdk is not installed: pip install sentry-sdk"
        ) from exc
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        max_request_body_size="never",
        traces_sample_rate=traces_sample_rate,
        before_send=scrub,
    )
