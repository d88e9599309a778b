"""How people are told: a mail to ALERT_EMAILS, a Slack-compatible webhook to ALERT_WEBHOOK_URL.

Each send raises DeliveryError, saying whether a later try may succeed (a server down, a 5xx,
a timeout) or not (the webhook refused the request with a 4xx).
"""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request

from django.conf import settings
from django.core import mail

from monitoring.models import Alert, NotificationEvent


class DeliveryError(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def admin_url(alert: Alert) -> str:
    scheme = "https" if settings.HTTPS else "http"
    return f"{scheme}://{settings.METIS_ADMIN_HOSTS[0]}/admin/monitoring/alert/{alert.pk}/change/"


def summary(alert: Alert, event: str) -> str:
    """Return the one-line headline: severity, key, and what happened."""
    verb = "RESOLVED" if event == NotificationEvent.RESOLVED else alert.severity.upper()
    return f"[Metis {verb}] {alert.key}"


def text(alert: Alert, event: str) -> str:
    """Return the body: the figure and threshold, when it started, and where to look."""
    lines = [
        summary(alert, event),
        alert.message,
        f"First seen {alert.first_seen_at:%Y-%m-%d %H:%M:%S}Z.",
    ]
    if event == NotificationEvent.RESOLVED and alert.resolved_at:
        lines.append(
            f"Clear since {alert.clear_since or alert.resolved_at:%Y-%m-%d %H:%M:%S}Z; "
            f"resolved {alert.resolved_at:%Y-%m-%d %H:%M:%S}Z."
        )
    lines.append(admin_url(alert))
    return "\n".join(lines)


def email_send(alert: Alert, event: str) -> None:
    connection = mail.get_connection(timeout=settings.ALERT_NOTIFY_TIMEOUT_SECONDS)
    message = mail.EmailMessage(
        subject=f"{summary(alert, event)}: {alert.message}"[:200],
        body=text(alert, event),
        to=settings.ALERT_EMAILS,
        connection=connection,
    )
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryError(f"mail: {error!r}", transient=True) from error


def webhook_send(alert: Alert, event: str) -> None:
    body = json.dumps({"text": text(alert, event)}).encode()
    request = urllib.request.Request(
        settings.ALERT_WEBHOOK_URL,
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.ALERT_NOTIFY_TIMEOUT_SECONDS):
            pass
    except urllib.error.HTTPError as error:
        # A 4xx will be refused again (a revoked Slack hook answers 404/410); not a 429.
        transient = error.code >= 500 or error.code == 429
        raise DeliveryError(f"webhook: HTTP {error.code}", transient=transient) from error
    except (urllib.error.URLError, OSError) as error:
        raise DeliveryError(f"webhook: {error!r}", transient=True) from error
