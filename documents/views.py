"""Tenant pages for documents: list, upload (drag and drop), detail, download, replace, delete;
the JSON endpoints of the presigned multipart upload."""

from __future__ import annotations

import uuid
from functools import wraps

from csp.decorators import csp_update
from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from documents import list_rows, multipart, pagination, replication, services, uploads
from documents.forms import DocumentReplaceForm, DocumentUploadForm
from documents.models import Document
from documents.validation import DocumentRejected
from metis.objectstore import store
from metis.objectstore.errors import STORE_ERRORS, StorageUnavailable
from tenants import client_ip, json_body
from tenants.views import tenant_login_required

PAGE_SIZE = 50
STORE_DOWN = "The document store is not reachable right now; nothing was saved. Try again."
UPLOADS_PAUSED = (
    "Primary storage is unavailable: uploads are paused until it is back; nothing was saved."
)


def _documents(request: HttpRequest):
    return Document.objects.for_tenant(request.tenant).live()


def _document_or_404(request: HttpRequest, document_id) -> Document:
    return get_object_or_404(_documents(request).select_related("tenant"), pk=document_id)


def _actor(request: HttpRequest) -> dict:
    return {"user": request.tenant_user, "ip_address": client_ip.client_ip(request)}


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _store_file(request: HttpRequest, form, store) -> tuple[Document | None, int]:
    """Run `store(file)` for a valid form; put any refusal on the form. Return (doc, status)."""
    if uploads.upload_too_large(request):
        form.errors.clear()
        form.add_error("file", DocumentRejected("The file is larger than the upload limit."))
        return None, 413
    problem = uploads.body_problem(request)
    if problem is not None:
        status, message = problem
        form.errors.clear()
        form.add_error("file", message)
        return None, status
    if not form.is_valid():
        return None, 400
    file = form.cleaned_data["file"]
    if replication.primary_down():  # the probe said so moments ago: no upload to time out
        form.add_error(None, UPLOADS_PAUSED)
        return None, 503
    try:
        return store(file), 201
    except DocumentRejected as exc:
        form.add_error("file", exc.messages[0])
        return None, 413 if exc.code == "too_large" else 400
    except StorageUnavailable:
        form.add_error(None, STORE_DOWN)
        return None, 503


def _upload_response(request, form, document, status, template, context) -> HttpResponse:
    if _wants_json(request):
        if document is None:
            return JsonResponse({"errors": form.errors.get_json_data()}, status=status)
        url = reverse("documents:detail", args=[document.pk])
        return JsonResponse({"id": str(document.pk), "url": url}, status=201)
    if document is None:
        return _render(request, template, {**context, "form": form}, status=status)
    return redirect("documents:detail", document.pk)


def _store_origin() -> str:
    """Where the page's upload parts go (the presigned URLs' origin), or "" without a store."""
    try:
        return store.documents_store().presigned_origin()
    except (ImproperlyConfigured, *STORE_ERRORS):
        return ""


def direct_upload(view):
    """For pages with the upload widget: give the template what the widget needs to send files
    straight to the object store, and let the page's scripts connect there (connect-src; both
    headers, django-csp writes only the configured one). Without a store the widget posts the
    form to the app, and the policy stays as strict as elsewhere."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        origin = _store_origin()
        request.direct_upload = origin and {
            "part_size": multipart.MIN_PART_SIZE,
            "parallel_parts": multipart.PARALLEL_PARTS,
        }
        wrapped = view
        if origin:
            for report_only in (False, True):
                wrapped = csp_update({"connect-src": [origin]}, REPORT_ONLY=report_only)(wrapped)
        return wrapped(request, *args, **kwargs)

    return wrapper


def _render(request: HttpRequest, template: str, context: dict, status: int = 200):
    context = {"direct_upload": getattr(request, "direct_upload", None), **context}
    return render(request, template, context, status=status)


@tenant_login_required
def document_list_view(request: HttpRequest) -> HttpResponse:
    try:
        page = list_rows.document_rows_page(
            _documents(request),
            tenant_id=request.tenant.pk,
            cursor=request.GET.get("after"),
            size=PAGE_SIZE,
        )
    except pagination.BadCursor as exc:
        return render(request, "documents/bad_cursor.html", {"reason": exc}, status=400)
    count, estimated = pagination.count_estimate(_documents(request))
    context = {"documents": page, "count": count, "count_is_estimate": estimated}
    return render(request, "documents/list.html", context)


@tenant_login_required
@direct_upload
def document_upload_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _render(request, "documents/upload.html", {"form": DocumentUploadForm()})
    form = DocumentUploadForm(request.POST, request.FILES)
    document, status = _store_file(
        request,
        form,
        lambda file: services.document_upload(
            tenant=request.tenant,
            document_type=form.cleaned_data["document_type"],
            file=file,
            filename=file.name,
            subject_ref=form.cleaned_data["subject_ref"],
            **_actor(request),
        ),
    )
    return _upload_response(request, form, document, status, "documents/upload.html", {})


@tenant_login_required
@direct_upload
def document_detail_view(request: HttpRequest, document_id) -> HttpResponse:
    document = _document_or_404(request, document_id)
    context = {
        "document": document,
        "versions": document.versions.for_tenant(request.tenant).order_by("-number"),
        "form": DocumentReplaceForm(),
        "refusal": services.download_refusal(document),
    }
    return _render(request, "documents/detail.html", context)


@tenant_login_required
@require_POST
@direct_upload
def document_replace_view(request: HttpRequest, document_id) -> HttpResponse:
    document = _document_or_404(request, document_id)
    form = DocumentReplaceForm(request.POST, request.FILES)
    replaced, status = _store_file(
        request,
        form,
        lambda file: services.document_replace(
            document=document, file=file, filename=file.name, **_actor(request)
        ),
    )
    context = {
        "document": document,
        "versions": document.versions.for_tenant(request.tenant).order_by("-number"),
        "refusal": services.download_refusal(document),
    }
    return _upload_response(request, form, replaced, status, "documents/detail.html", context)


@tenant_login_required
@require_POST
def document_delete_view(request: HttpRequest, document_id) -> HttpResponse:
    document = _document_or_404(request, document_id)
    services.document_delete(document=document, **_actor(request))
    messages.success(request, f"“{document.original_filename}” was deleted.")
    return redirect("documents:list")


@tenant_login_required
@require_GET
def document_download_view(request: HttpRequest, document_id) -> HttpResponse:
    document = _document_or_404(request, document_id)
    try:
        url = services.document_download_url(document=document, **_actor(request))
    except services.DocumentNotDownloadable as exc:
        return render(
            request,
            "documents/not_downloadable.html",
            {"document": document, "reason": exc},
            status=503 if isinstance(exc, services.DocumentUnavailable) else 409,
        )
    return redirect(url)


# --- Presigned multipart upload (JSON) -----------------------------------------------------------


# Which field a refusal of multipart/start is about: the service checks what the client declared.
_DECLARATIONS = {
    "multipart_start_view": {
        "bad_type": "document_type",
        "bad_filename": "filename",
        "empty": "size",
        "bad_size": "size",
        "too_large": "size",
        "bad_checksum": "sha256",
        "unknown_content": "content_type",
        "content_not_allowed": "content_type",
        "bad_subject_ref": "subject_ref",
        "bad_part_size": "part_size",
    },
    "multipart_parts_view": {"bad_part_checksums": "part_checksums"},
    "multipart_complete_view": {"bad_part_checksums": "part_checksums", "bad_checksum": "sha256"},
}


class FieldInvalid(ValueError):
    """A field of a JSON request that is missing or not what the endpoint takes."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def json_endpoint(view):
    """Read a bounded JSON object; turn refusals into JSON errors (404 for another tenant's
    upload). Each error says what to fix, and names the field when one is at fault."""

    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if request.tenant_user is None:
            return JsonResponse({"error": "Sign in first."}, status=401)
        try:
            body = json_body.read_json(request)
        except json_body.BadJsonBody as exc:
            return JsonResponse({"error": str(exc), "code": "bad_body"}, status=exc.status)
        if not isinstance(body, dict):
            return JsonResponse({"error": "Send a JSON object.", "code": "bad_body"}, status=400)
        try:
            return view(request, body)
        except FieldInvalid as exc:
            error = {"error": str(exc), "code": "bad_field", "field": exc.field}
            return JsonResponse(error, status=400)
        except multipart.UploadRefused as exc:
            return JsonResponse({"error": str(exc)}, status=404)
        except Http404:
            return JsonResponse({"error": "No such document."}, status=404)
        except DocumentRejected as exc:
            error = {"error": exc.messages[0], "code": exc.code}
            field = _DECLARATIONS.get(view.__name__, {}).get(exc.code)
            if field:
                error["field"] = field
            return JsonResponse(error, status=413 if exc.code == "too_large" else 400)
        except StorageUnavailable:
            return JsonResponse({"error": STORE_DOWN}, status=503)

    return require_POST(wrapper)


# Our requests are small: a ticket is a few hundred characters, an ETag a quoted MD5 (or a
# multipart one), and no upload has more parts than S3 allows.
_TICKET_MAX_CHARS = 4096
_ETAG_MAX_CHARS = 128


def _text(body: dict, name: str, *, max_chars: int | None = None, required: bool = True):
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise FieldInvalid(name, f"Give “{name}” as a string.")
    if max_chars is not None and len(value) > max_chars:
        raise FieldInvalid(
            name, f"“{name}” has {len(value):,} characters; at most {max_chars:,} are accepted."
        )
    return value


def _integer(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldInvalid(name, f"Give “{name}” as a whole number.")
    return value


def _items(body: dict, name: str) -> list:
    value = body.get(name)
    if not isinstance(value, list) or not value:
        raise FieldInvalid(name, f"Give “{name}” as a non-empty list.")
    if len(value) > multipart.MAX_PARTS:
        raise FieldInvalid(
            name, f"“{name}” has {len(value):,} items; at most {multipart.MAX_PARTS:,}."
        )
    return value


def _checksums(body: dict) -> list[str] | None:
    """The optional list of part checksums: base64 SHA-256 strings (the service checks them)."""
    if body.get("part_checksums") is None:
        return None
    return [
        _text({"part_checksums": item}, "part_checksums", max_chars=44)
        for item in _items(body, "part_checksums")
    ]


def _uuid(value: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise FieldInvalid(name, f"“{name}” is not a document id.") from None


def _ticket(request: HttpRequest, body: dict) -> multipart.MultipartUpload:
    ticket = _text(body, "ticket", max_chars=_TICKET_MAX_CHARS)
    return multipart.multipart_ticket_open(ticket=ticket, tenant=request.tenant)


def _parts(urls: dict[int, str]) -> list[dict]:
    return [{"number": number, "url": url} for number, url in sorted(urls.items())]


@json_endpoint
def multipart_start_view(request: HttpRequest, body: dict) -> HttpResponse:
    replacing = None
    checksummed = body.get("checksummed", False) is True
    document_id = _text(body, "document_id", max_chars=36, required=False)
    if document_id:
        replacing = _document_or_404(request, _uuid(document_id, "document_id"))
    upload = multipart.multipart_upload_start(
        tenant=request.tenant,
        document_type=_text(body, "document_type", max_chars=40, required=replacing is None) or "",
        filename=_text(body, "filename"),
        size_bytes=_integer(body.get("size"), "size"),
        sha256=_text(body, "sha256", max_chars=64, required=not checksummed) or "",
        content_type=_text(body, "content_type", max_chars=100),
        replacing=replacing,
        subject_ref=_text(body, "subject_ref", max_chars=100, required=False) or "",
        part_size=None
        if body.get("part_size") is None
        else _integer(body["part_size"], "part_size"),
        checksummed=checksummed,
    )
    return JsonResponse(
        {
            "ticket": upload.ticket,
            "key": upload.key,
            "part_size": upload.part_size,
            "part_count": upload.part_count,
            "parts": _parts(upload.part_urls),
        },
        status=201,
    )


@json_endpoint
def multipart_parts_view(request: HttpRequest, body: dict) -> HttpResponse:
    upload = _ticket(request, body)
    numbers = [_integer(number, "part_numbers") for number in _items(body, "part_numbers")]
    urls = multipart.multipart_upload_part_urls(
        tenant=request.tenant, upload=upload, part_numbers=numbers, part_checksums=_checksums(body)
    )
    return JsonResponse({"parts": _parts(urls)})


def _part(part) -> dict:
    if not isinstance(part, dict):
        raise FieldInvalid("parts", 'Give each of “parts” as {"number": …, "etag": …}.')
    return {
        "PartNumber": _integer(part.get("number"), "parts"),
        "ETag": _text(part, "etag", max_chars=_ETAG_MAX_CHARS),
    }


@json_endpoint
def multipart_complete_view(request: HttpRequest, body: dict) -> HttpResponse:
    upload = _ticket(request, body)
    # A checksummed upload is completed from S3's own listing; a part list is not needed.
    named = body.get("parts") if upload.checksummed else _items(body, "parts")
    parts = [_part(part) for part in (_items(body, "parts") if named else [])]
    document = multipart.multipart_upload_complete(
        tenant=request.tenant,
        upload=upload,
        parts=parts,
        part_checksums=_checksums(body),
        sha256=_text(body, "sha256", max_chars=64, required=False) or "",
        **_actor(request),
    )
    url = reverse("documents:detail", args=[document.pk])
    return JsonResponse({"id": str(document.pk), "url": url}, status=201)


@json_endpoint
def multipart_abort_view(request: HttpRequest, body: dict) -> HttpResponse:
    multipart.multipart_upload_abort(tenant=request.tenant, upload=_ticket(request, body))
    return JsonResponse({"aborted": True})
