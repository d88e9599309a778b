"""The upload page in a real browser (Chromium via Playwright): drop a file, watch the
progress bar, land on the stored document; a refused file shows its error in place. Where the
bucket's CORS rule lets the page reach S3, the file goes there straight, in parallel parts;
where it does not, the page posts it to the app."""

from __future__ import annotations

import hashlib
import io
import os
import shutil

import pytest
from django.core.management import call_command

from documents.models import Document
from metis.objectstore import store
from tenants import db
from tests.documents.conftest import pdf_around, png_bytes, serve_app
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs the chromium Debian package")

DROP_FILE = """
([name, base64, type]) => {
  const bytes = Uint8Array.from(atob(base64), c => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, {type}));
  const zone = document.querySelector("[data-upload-form]");
  new MutationObserver(() => window.recordProgress(zone.dataset.progress))
    .observe(zone, {attributes: true, attributeFilter: ["data-progress"]});
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
}
"""


@pytest.fixture
def live_app(committed_db, s3_bucket):
    with serve_app(threaded=True) as port:
        yield port


def _in_browser(port: int, files: list[tuple[str, bytes, str]], watch=None) -> list[dict]:
    """Sign in as alice, drop each file on the upload page; return what the page showed.
    `watch(page)` may listen to the page first."""
    import base64

    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        if watch is not None:
            watch(page)
        seen: list[str] = []
        page.expose_function("recordProgress", lambda value: seen.append(value))
        base = f"http://acme.localhost:{port}"
        page.goto(f"{base}/login/")
        page.fill("input[name=email]", "alice@acme.example")
        page.fill("input[name=password]", TEST_PASSWORD)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(f"{base}/")
        for name, content, document_type in files:
            seen.clear()
            page.goto(f"{base}/documents/upload/")
            page.select_option("select[name=document_type]", document_type)
            page.evaluate(DROP_FILE, [name, base64.b64encode(content).decode(), "application/pdf"])
            page.wait_for_function(
                "() => !location.pathname.endsWith('/upload/') || "
                "document.querySelector('.upload-status.error')",
                timeout=120_000,
            )
            status = page.locator(".upload-status")
            results.append(
                {
                    "path": page.evaluate("location.pathname"),
                    "progress": list(seen),
                    "error": status.text_content() if status.count() else "",
                }
            )
        browser.close()
    return results


def test_drag_and_drop_upload_with_progress_in_a_real_browser(live_app):
    tenant = TenantFactory(name="Acme Lending", subdomain="acme")
    TenantUserFactory(tenant=tenant, email="alice@acme.example")
    pdf = pdf_around(b"% browser upload\n" * 200_000)  # 3 MB: several progress events
    png = png_bytes()

    stored, refused = _in_browser(
        live_app, [("statement.pdf", pdf, "bank-statement"), ("photo.pdf", png, "bank-statement")]
    )

    with db.tenant_context(tenant.pk):
        document = Document.objects.for_tenant(tenant).get()
    assert stored["path"] == f"/documents/{document.pk}/"
    assert stored["progress"] and stored["progress"][-1] == "100"
    assert document.size_bytes == len(pdf) and document.original_filename == "statement.pdf"
    assert refused["path"] == "/documents/upload/"
    assert "A Bank statement must be a PDF; this file is a PNG." in refused["error"]


def test_the_page_sends_the_file_straight_to_s3_in_parallel_parts(
    live_app, s3_bucket, s3_server, settings
):
    # The bucket's CORS rule as production gets it: storage_setup, for this server's origin.
    settings.AWS_S3_CORS_ORIGINS = [f"http://*.localhost:{live_app}"]
    call_command("storage_setup", stdout=io.StringIO())
    tenant = TenantFactory(name="Acme Lending", subdomain="acme")
    TenantUserFactory(tenant=tenant, email="alice@acme.example")
    pdf = pdf_around(os.urandom(20 * 1024 * 1024))  # three parts of at most 8 MiB
    origin = store.documents_store().presigned_origin()
    requests: list[tuple[str, str]] = []

    def watch(page) -> None:
        page.on("request", lambda request: requests.append((request.method, request.url)))

    [stored] = _in_browser(live_app, [("big statement.pdf", pdf, "bank-statement")], watch)

    with db.tenant_context(tenant.pk):
        document = Document.objects.for_tenant(tenant).get()
    assert stored["path"] == f"/documents/{document.pk}/", stored
    assert stored["progress"] and stored["progress"][-1] == "100"
    body = s3_server.client().get_object(Bucket=s3_bucket, Key=document.storage_key)["Body"]
    assert body.read() == pdf  # byte for byte
    assert document.size_bytes == len(pdf) and document.original_filename == "big statement.pdf"
    assert document.sha256 == hashlib.sha256(pdf).hexdigest()
    puts = [url for method, url in requests if method == "PUT"]
    assert len(puts) == 3 and all(url.startswith(origin + "/") for url in puts)
    # The file never passed through the app: no form post, only the small JSON calls.
    posts = [url.split(str(live_app), 1)[1] for method, url in requests if method == "POST"]
    assert "/documents/upload/" not in posts
    assert "/documents/multipart/start/" in posts and posts[-1] == "/documents/multipart/complete/"
    # The parts' URLs, each with its digest signed in: the first part alone, then the other two.
    assert posts.count("/documents/multipart/parts/") == 2
