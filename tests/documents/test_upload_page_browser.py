"""The upload page in a real browser (Chromium via Playwright): drop a file, watch the
progress bar, land on the stored document; a refused file shows its error in place."""

from __future__ import annotations

import shutil

import pytest

from documents.models import Document
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


def _in_browser(port: int, files: list[tuple[str, bytes, str]]) -> list[dict]:
    """Sign in as alice, drop each file on the upload page; return what the page showed."""
    import base64

    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
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
                "document.querySelector('.upload-status.error')"
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
