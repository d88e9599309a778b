"""Error pages (400, 403, 404, 500 and CSRF failures) in the style of the host that failed.

A tenant's host gets the tenant pages' look (templates/errors/tenant.html), the staff host the
admin's (templates/errors/admin.html). Both URLconfs name these views as their handlers, and
CSRF_FAILURE_VIEW names `csrf_failure`, whose built-in page has an inline style the CSP blocks.

The 500 page is rendered for a request that already failed, perhaps because PostgreSQL did: it
runs no context processor (the auth and messages ones would read the session) and reads only
what the middleware had already loaded (the tenant, the signed-in tenant user), never the
database.

The 400 is also what Django answers for a SuspiciousOperation: a Host header the site does not
serve (DisallowedHost, also raised by the tenant middleware for a malformed tenant name), a
body or form past Django's limits. Each gets a message that says what to fix, and JSON where
the request wants JSON (metis/unavailable.py decides, as for its 503s).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

from metis.unavailable import wants_json

PAGES = {
    400: ("Bad request", "The request could not be understood. Check the address and try again."),
    403: ("Forbidden", "You do not have permission to open this page."),
    404: ("Page not found", "There is no page at this address. Check the address and try again."),
    500: (
        "Server error",
        "Something went wrong on our side and it has been logged. Try again in a moment.",
    ),
}
# What to fix, by the SuspiciousOperation Django turned into the 400.
BAD_REQUEST_MESSAGES: dict[type[Exception], str] = {
    DisallowedHost: (
        "This site does not serve the host name in the request (the Host header). Check the "
        "address: a tenant's pages are at <name>.{domain}."
    ),
    RequestDataTooBig: "The request body is larger than this page accepts. Send less at a time.",
    TooManyFieldsSent: "The form has more fields than this page accepts. Send fewer.",
    TooManyFilesSent: "The form has more files than this page accepts. Send fewer.",
}
CSRF_MESSAGE = (
    "This form has expired or did not come from this site. Go back, reload the page and send "
    "the form again; if it keeps happening, allow cookies for this site."
)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    message = next(
        (text for kind, text in BAD_REQUEST_MESSAGES.items() if isinstance(exception, kind)),
        PAGES[400][1],
    ).replace("{domain}", settings.METIS_BASE_DOMAIN)
    if wants_json(request):
        return JsonResponse({"error": message}, status=400)
    return _error_page(request, 400, message=message)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _error_page(request, 403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _error_page(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    return _error_page(request, 500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _error_page(request, 403, message=CSRF_MESSAGE)


def _error_page(request: HttpRequest, status: int, *, message: str = "") -> HttpResponse:
    title, default_message = PAGES[status]
    context = {
        "status": status,
        "title": title,
        "message": message or default_message,
        "server_error": status == 500,
        "site_header": admin.site.site_header,
        "site_title": admin.site.site_title,
    }
    style = "admin" if _on_staff_host(request) else "tenant"
    template = loader.get_template(f"errors/{style}.html")
    if status == 500:
        # No RequestContext: its context processors would touch the session, hence the database.
        body = template.render({**context, "request": request})
    else:
        body = template.render(context, request)
    return HttpResponse(body, status=status)


def _on_staff_host(request: HttpRequest) -> bool:
    if getattr(request, "tenant", None) is not None:
        return False
    # Not get_host(): a disallowed host is itself one of the errors rendered here.
    host = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", "")
    return host.rsplit(":", 1)[0].lower().rstrip(".") in settings.METIS_ADMIN_HOSTS
