"""A real browser (Debian's chromium, headless, through Playwright) draws the staff dashboard."""

import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model

from documents.models import Document
from tenants import db
from tests.analytics.conftest import insert_events, now
from tests.factories import TEST_PASSWORD, TenantFactory
from tests.support import staff
from tests.support.browser import non_blank_canvases


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
