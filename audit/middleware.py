"""Log reads of personal data, by URL name: one table below, not a call in each view.

Innermost in MIDDLEWARE, so it runs inside the tenant context (tenant hosts) or the staff scope
(the admin) the tenant middleware opened: a row lands in the chain of the tenant whose data was
read, and a staff member reading a tenant's rows shows up in that tenant's own log. Only answers
below 400 count (a read that happened), and only signed-in readers (an anonymous request is sent
to sign in, it reads nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

from audit import context, recorder
from tenants import client_ip


@dataclass(frozen=True)
class AuditedRead:
    action: str
    target_type: str = ""
    target_kwarg: str = ""  # the URL keyword naming the target, if any
    methods: frozenset[str] = frozenset({"GET", "HEAD"})


_DOCUMENT = "document"
_USER = "tenant_user"
_EXPORT = "export"
_POST = frozenset({"POST"})

# URL name → what reading it means. Tenant hosts first, then the staff admin's pages.
AUDITED_READS: dict[str, AuditedRead] = {
    "documents:list": AuditedRead("document.list"),
    "documents:detail": AuditedRead("document.view", _DOCUMENT, "document_id"),
    "documents:download": AuditedRead("document.download", _DOCUMENT, "document_id"),
    "tenants:home": AuditedRead("team.list"),
    "tenants:team-member": AuditedRead("team.view", _USER, "user_id"),
    "audit:log": AuditedRead("audit.view"),
    # Portability (privacy/exports): the list, a request, its page and its download link.
    "exports:list": AuditedRead("export.list"),
    "exports:mine": AuditedRead("export.request", methods=_POST),
    "exports:subject": AuditedRead("export.request", methods=_POST),
    "exports:detail": AuditedRead("export.view", _EXPORT, "export_id"),
    "exports:download": AuditedRead("export.download", _EXPORT, "export_id"),
    # Erasure (privacy/views.py): the requests page and a receipt. A request made there is a
    # write, recorded by the database's trigger on the erasure requests table (privacy/0005).
    "privacy:erasure": AuditedRead("erasure.list"),
    "privacy:receipt": AuditedRead("erasure.receipt", "erasure_request", "request_id"),
    "admin:documents_document_changelist": AuditedRead("document.list"),
    "admin:documents_document_change": AuditedRead("document.view", _DOCUMENT, "object_id"),
    "admin:documents_document_download": AuditedRead("document.download", _DOCUMENT, "document_id"),
    "admin:tenants_tenantuser_changelist": AuditedRead("team.list"),
    "admin:tenants_tenantuser_change": AuditedRead("team.view", _USER, "object_id"),
    "admin:audit_auditentry_changelist": AuditedRead("audit.search"),
    "admin:analytics:workbench": AuditedRead("workbench.run", methods=_POST),
}


def actor_of(request: HttpRequest) -> context.Actor:
    """Return who makes this request: a tenant user, a staff member, or nobody signed in."""
    ip, request_id = client_ip.client_ip(request), getattr(request, "request_id", "")
    if getattr(request, "tenant", None) is not None:
        user = getattr(request, "tenant_user", None)
        kind = "tenant_user"
    else:
        user = getattr(request, "user", None)
        kind = "staff"
    if user is None or not getattr(user, "is_authenticated", False):
        return context.Actor("anonymous", "", ip, request_id)
    return context.Actor(kind, str(user.pk), ip, request_id)


class AuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with context.acting(actor_of(request)) as actor:
            response = self.get_response(request)
            # The tenant user may have signed in or out meanwhile: attribute to who it is now.
            actor = actor_of(request)
            match = request.resolver_match
            read = AUDITED_READS.get(match.view_name) if match else None
            admin_action = _admin_action(request, match.view_name if match else "")
            if actor.type == "anonymous" or response.status_code >= 400:
                return response
            if read is not None and request.method in read.methods:
                recorder.record(
                    action=read.action,
                    target_type=read.target_type,
                    target_id=match.kwargs.get(read.target_kwarg, "") if match else "",
                    metadata={"status": response.status_code, "view": match.view_name},
                    actor=actor,
                )
            elif admin_action is not None:
                recorder.record(action="admin.action", metadata=admin_action, actor=actor)
        return response


def _admin_action(request: HttpRequest, view_name: str) -> dict | None:
    """An admin action run on a change list (exports, downloads, releases): name and count."""
    if request.method != "POST" or not view_name.endswith("_changelist"):
        return None
    action = request.POST.get("action")
    if not action:
        return None
    selected = request.POST.getlist("_selected_action")
    return {"view": view_name, "action": action, "selected": len(selected)}
