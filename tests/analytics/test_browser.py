"""A real browser (Debian's chromium, headless, through Playwright) draws the staff dashboard."""

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from documents.models import Document
from tenants import db
from tests.analytics.conftest import insert_events, now
from tests.factories import TEST_PASSWORD, TenantFactory
from tests.support import staff

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def committed_live_server(committed_db, request):
    """pytest-django's live_server over really committed rows.

    Asked for by name, live_server makes the test transactional, and that flush is a TRUNCATE
    the RLS-bound app role may not run; fetched here instead, committed_db's owner cleans up.
    """
    server = request.getfixturevalue("live_server")
    server._live_server_modified_settings.enable()
    yield server
    server._live_server_modified_settings.disable()


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; our database calls here stay
    # synchronous, so Django's async-safety guard does not apply.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def non_blank_canvases(page) -> dict[str, bool]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('canvas')].map(c => {
            const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let painted = false;
            for (let i = 3; i < pixels.length; i += 4) {
                if (pixels[i] !== 0) { painted = true; break; }
            }
            return [c.id, painted];
        }))"""
    )


def test_staff_dashboard_draws_its_charts_in_a_browser(
    clickhouse_db, committed_live_server, browser
):
    acme = TenantFactory(name="Acme Lending", subdomain="acme")
    boss = get_user_model().objects.create_superuser("boss", "boss@metis.example", TEST_PASSWORD)
    app = staff.authenticator_app(boss)
    insert_events(
        [
            (
                acme.pk,
                event_type,
                '{"document_type": "pan"}',
                uuid.uuid4(),
                now() - timedelta(hours=hours),
            )
            for hours in range(0, 150, 3)
            for event_type in ("auth.sign_in", "document.uploaded")
        ]
    )
    with db.tenant_context(acme.pk):
        for n, tier in enumerate(["STANDARD", "STANDARD", "GLACIER"]):
            Document.objects.create(
                tenant=acme,
                document_type="pan",
                original_filename=f"{n}.pdf",
                content_type="application/pdf",
                size_bytes=1000 * (n + 1),
                sha256="0" * 64,
                storage_key=f"tenants/{acme.pk}/documents/{n}",
                storage_class=tier,
            )

    page = browser.new_page()
    page.goto(f"{committed_live_server.url}/admin/login/?next=/admin/analytics/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("input[type=submit]")
    page.fill("#id_code", app.now())  # the second step: a code from the authenticator app
    page.click("input[type=submit]")
    page.goto(f"{committed_live_server.url}/admin/analytics/?tenant={acme.pk}")
    page.wait_for_function("window.metisCharts && window.metisCharts.length === 5")

    assert page.text_content("#total-events") == "100"
    assert non_blank_canvases(page) == {
        "chart-events-by-hour": True,
        "chart-top-event-types": True,
        "chart-active-users": True,
        "chart-uploads-by-type": True,
        "chart-storage-by-tier": True,
    }
    # The filter lives in the URL: the same charts for another range, every chart follows it.
    page.goto(
        f"{committed_live_server.url}/admin/analytics/?tenant={acme.pk}&start=2020-01-01&end=2020-01-07"
    )
    page.wait_for_function("window.metisCharts && window.metisCharts.length === 5")
    assert page.text_content("#total-events") == "0"
    page.close()
