"""Reading a JSON request body within bounds: its size, its nesting depth, and all of it.

Every JSON endpoint reads its body here, so each refusal is the same clear answer: a body larger
than the endpoint takes is refused from its Content-Length without being read (413); a chunked
body without a Content-Length, which Django reads as empty, is refused as such (411) rather than
parsed as nothing; a body cut short, malformed, or nested deeper than any request of ours needs
is a 400 saying so. Django's own guard (DATA_UPLOAD_MAX_MEMORY_SIZE) would answer a bare
"Bad Request (400)" page, and the json module a RecursionError (a 500) on deep nesting.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

MAX_BYTES = 1024 * 1024
# Our requests nest three levels at most ({"parts": [{"number": 1}]}); CSP reports four.
MAX_DEPTH = 16


class BadJsonBody(ValueError):
    """A body that cannot be read as the endpoint's JSON; `status` is the HTTP answer."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def chunked_without_length(request: HttpRequest) -> bool:
    """Whether the body came chunked, without a Content-Length: Django then reads nothing."""
    encoding = request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    return "chunked" in encoding and not request.META.get("CONTENT_LENGTH")


def read_json(
    request: HttpRequest, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """Return the request's JSON body, or raise BadJsonBody saying what to fix."""
    if chunked_without_length(request):
        raise BadJsonBody(
            "The body came chunked, without a Content-Length header, and could not be read; "
            "send it with a Content-Length.",
            status=411,
        )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadJsonBody("The Content-Length header is not a number.") from None
    if declared > max_bytes:
        raise _too_large(declared, max_bytes)
    try:
        body = request.read(max_bytes + 1)
    except RequestDataTooBig:  # read in full already by something else, past Django's cap
        raise _too_large(declared, max_bytes) from None
    if len(body) > max_bytes:
        raise _too_large(len(body), max_bytes)
    if len(body) < declared:
        raise BadJsonBody(
            f"The body was cut short: {len(body)} of the {declared} bytes announced arrived. "
            "Send it again."
        )
    if not body.strip():
        raise BadJsonBody("The body is empty; send a JSON object.")
    try:
        payload = json.loads(body)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadJsonBody(f"The body is not valid JSON: {_short(exc)}.") from None
    if _depth(payload) > max_depth:
        raise _too_deep(max_depth)
    return payload


def _depth(payload: Any) -> int:
    """The nesting depth of a decoded document, walked without recursion."""
    deepest, stack = 0, [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        elif not isinstance(value, list):
            continue
        deepest = max(deepest, depth)
        stack.extend((item, depth + 1) for item in value)
    return deepest


def _too_large(size: int, limit: int) -> BadJsonBody:
    return BadJsonBody(
        f"The body is {_size(size)}; the limit is {_size(limit)}. Send less at a time.",
        status=413,
    )


def _too_deep(limit: int) -> BadJsonBody:
    return BadJsonBody(f"The JSON is nested too deeply; at most {limit} levels are accepted.")


def _size(size: int) -> str:
    return filesizeformat(size).replace("\xa0", " ")


def _short(exc: Exception) -> str:
    return str(exc)[:200]
