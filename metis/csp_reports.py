"""The Content Security Policy report endpoint, /csp-report/ on the staff host and tenant hosts.

Browsers POST a report here for each violation of the policy (settings, "Content Security
Policy"): the older `application/csp-report` body (`report-uri`) or the Reporting API's
`application/reports+json` list (`report-to`). Each violation becomes one WARNING on the
`metis.csp` logger. Anyone may post, signed in or not, so the view reads a body bounded in size
and depth (tenants.json_body), touches no database and logs only short, printable excerpts.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tenants import json_body

logger = logging.getLogger("metis.csp")

MAX_BODY_BYTES = 16 * 1024
MAX_FIELD_CHARS = 200
# A Reporting API body may batch several reports; log this many at most.
MAX_REPORTS = 20
CONTENT_TYPES = ("application/csp-report", "application/reports+json", "application/json")


@csrf_exempt  # browsers send reports without a token; the view changes nothing
@require_POST
def csp_report_view(request: HttpRequest) -> HttpResponse:
    """Log each violation in the posted report; answer 204."""
    if request.content_type not in CONTENT_TYPES:
        return HttpResponse("Send a CSP report.", status=415, content_type="text/plain")
    try:
        violations = _violations(json_body.read_json(request, max_bytes=MAX_BODY_BYTES))
    except json_body.BadJsonBody as exc:
        if exc.status == 413:
            return _too_large()
        return HttpResponse(f"Malformed CSP report: {exc}", status=400, content_type="text/plain")
    except (ValueError, TypeError):
        return HttpResponse("Malformed CSP report.", status=400, content_type="text/plain")
    for violation in violations[:MAX_REPORTS]:
        logger.warning(
            "CSP violation on %s: %s blocked %s (%s)",
            violation["document"],
            violation["directive"],
            violation["blocked"],
            violation["disposition"],
        )
    return HttpResponse(status=204)


def _too_large() -> HttpResponse:
    return HttpResponse("CSP report too large.", status=413, content_type="text/plain")


def _violations(payload: Any) -> list[dict[str, str]]:
    """Return the violations in either report format; raise ValueError for anything else."""
    if isinstance(payload, dict) and isinstance(payload.get("csp-report"), dict):
        report = payload["csp-report"]
        return [
            _violation(
                document=report.get("document-uri"),
                directive=report.get("effective-directive") or report.get("violated-directive"),
                blocked=report.get("blocked-uri"),
                disposition=report.get("disposition"),
            )
        ]
    if isinstance(payload, list) and all(isinstance(entry, dict) for entry in payload):
        return [
            _violation(
                document=body.get("documentURL") or entry.get("url"),
                directive=body.get("effectiveDirective"),
                blocked=body.get("blockedURL"),
                disposition=body.get("disposition"),
            )
            for entry in payload
            if entry.get("type") == "csp-violation" and isinstance(body := entry.get("body"), dict)
        ]
    raise ValueError("not a CSP report")


def _violation(**fields: object) -> dict[str, str]:
    return {name: _excerpt(value) for name, value in fields.items()}


def _excerpt(value: object) -> str:
    """Return a short one-line rendering of a field a stranger wrote (no forged log lines)."""
    text = "" if value is None else str(value)
    short = "".join(c if c.isprintable() else "?" for c in text[:MAX_FIELD_CHARS])
    if len(text) > MAX_FIELD_CHARS:
        short += "…"
    return short or "-"
