"""An erasure's receipt as a JSON download: the same answer for staff and tenant admins."""

from __future__ import annotations

import json

from django.http import HttpResponse

from privacy.models import ErasureRequest


def receipt_download(erasure: ErasureRequest) -> HttpResponse:
    """Return the receipt as stored (ids, counts, holds; no names) as an attachment."""
    response = HttpResponse(
        json.dumps(erasure.receipt, indent=2, sort_keys=True), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="erasure-{erasure.pk}-receipt.json"'
    return response


def held_parts(erasure: ErasureRequest) -> list[dict]:
    """What the latest run held back, each with its rule and date (None: until lifted)."""
    runs = erasure.receipt.get("runs") or []
    return list(runs[-1].get("held") or []) if runs else []
