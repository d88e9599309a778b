"""The Content Security Policy in a real browser (Chromium via Playwright): every tenant page and
staff page we serve works under it, and none is refused anything.

Three witnesses, each able to see a refusal the others miss: the page's
`securitypolicyviolation` events, Chromium's console, and the report endpoint's log. At the end a
deliberate violation shows that all three are listening.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import timedelta

import pyotp
import pytest
from django.conf import settings

from analytics import exports, schema
from monitoring import services
from tenants import db, passwords
from tests.analytics.conftest import insert_events, now
from tests.documents.conftest import pdf_bytes, upload
from tests.factories import TEST_PASSWORD
from tests.support import staff
from tests.support.browser import non_blank_canvases

# The data the browser shares and the tests read: committed, so the live server's threads see it.
pytestmark = pytest.mark.committed

LISTEN = """
document.addEventListener("securitypolicyviolation", (e) => window.cspViolation({
  page: location.pathname, directive: e.effectiveDirective, blocked: e.blockedURI,
  source: e.sourceFile, line: e.lineNumber, sample: e.sample,
}));
"""


@pytest.fixture
def events(settings, tmp_path):
    """A ClickHouse database of this test's own (the embedded engine); `add` gives a tenant a
    few days of events to chart."""
    settings.CLICKHOUSE_URL = ""
    settings.CLICKHOUSE_CHDB_PATH = tmp_path / "chdb"
    settings.CLICKHOUSE_DATABASE = f"csp_{uuid.uuid4().hex[:8]}"
    schema.migrate()

    def add(tenant):
        insert_events(
            [
                (
                    tenant.pk,
                    kind,
                    '{"document_type": "pan"}',
                    uuid.uuid4(),
                    now() - timedelta(hours=h),
                )
                for h in range(0, 150, 6)
                for kind in ("auth.sign_in", "document.uploaded")
            ]
        )

    return add


class ReportLog(logging.Handler):
    """What the report endpoint logs, caught on `metis.csp` itself rather than by caplog.

    django-celery-beat's task form loads Celery's task modules, and Celery's Django fix-up then
    runs django.setup() again, which re-applies LOGGING and drops the root handlers caplog uses.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def report_log():
    logger = logging.getLogger("metis.csp")
    handler, level = ReportLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


class Witness:
    """What the browser and the report endpoint said about the policy."""

    def __init__(self, context, report_log: ReportLog):
        self.violations: list[dict] = []
        self.console: list[str] = []
        self.report_log = report_log
        context.expose_function("cspViolation", self._violation)
        context.add_init_script(LISTEN)
        context.on("console", self._console)

    def _violation(self, violation: dict) -> None:
        self.violations.append(violation)

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.console.append(f"{message.location.get('url')}: {message.text}")

    def reports(self) -> list[str]:
        return list(self.report_log.messages)

    def visit(self, page, url: str, *, status: int = 200) -> None:
        response = page.goto(url)
        assert response is not None and response.status == status, f"{url}: {response}"
        assert response.headers.get("content-security-policy"), f"{url} has no policy"


def test_every_page_works_under_the_policy_and_none_is_refused_anything(
    committed_live_server,
    browser,
    tenant,
    tenant_user,
    staff_client,
    s3_bucket,
    events,
    mailoutbox,
    report_log,
):
    events(tenant)
    existing = upload(tenant, pdf_bytes("staff download"), name="kyc.pdf")
    port = committed_live_server.url.rsplit(":", 1)[1]
    tenant_base = f"http://{tenant.subdomain}.{settings.METIS_BASE_DOMAIN}:{port}"
    staff_base = f"http://{settings.METIS_BASE_DOMAIN}:{port}"

    context = browser.new_context()
    witness = Witness(context, report_log)
    page = context.new_page()

    # --- Password reset: the pages a stranger sees, and a real link's page (the service mails
    # it here, so no task waits in the broker).
    witness.visit(page, f"{tenant_base}/password-reset/")
    witness.visit(page, f"{tenant_base}/password-reset/sent/")
    witness.visit(page, f"{tenant_base}/password-reset/{'x' * 43}/", status=410)
    with db.tenant_context(tenant.pk):
        passwords.password_reset_request(tenant=tenant, email=tenant_user.email, origin=tenant_base)
    [link] = re.findall(r"http://\S+/password-reset/\S+/", mailoutbox[0].body)
    witness.visit(page, link)
    assert page.url == f"{tenant_base}/password-reset/set/"

    # --- Tenant pages, signed in through the sign-in form.
    witness.visit(page, f"{tenant_base}/login/")
    page.fill("input[name=email]", tenant_user.email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{tenant_base}/")
    witness.visit(page, f"{tenant_base}/")
    witness.visit(page, f"{tenant_base}/team/{tenant_user.pk}/")
    witness.visit(page, f"{tenant_base}/account/password/")
    witness.visit(page, f"{tenant_base}/documents/upload/")
    # The widget's XHR upload (connect-src), then the stored document's page.
    page.select_option("select[name=document_type]", "bank-statement")
    page.set_input_files(
        "input[type=file]",
        {"name": "statement.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes("browser")},
    )
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(lambda url: not url.endswith("/upload/"))
    assert page.locator("h1").text_content() == "statement.pdf"
    witness.visit(page, f"{tenant_base}/documents/")
    witness.visit(page, f"{tenant_base}/documents/{existing.pk}/")
    witness.visit(page, f"{tenant_base}/usage/")
    page.wait_for_function("window.metisCharts && window.metisCharts.length > 0")
    assert all(non_blank_canvases(page).values())

    # --- Staff pages, in the session of the staff client the fixtures signed in (with whatever
    # a staff sign-in takes), not through the admin's sign-in form.
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": staff_client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": staff_base,
            }
        ]
    )
    witness.visit(page, f"{staff_base}/admin/")
    witness.visit(page, f"{staff_base}/admin/tenant-context/")
    page.select_option("#id_tenant", str(tenant.pk))
    page.click("input[type=submit]")
    page.wait_for_selector("#tenant-context.tenant-context-one")
    witness.visit(page, f"{staff_base}/admin/documents/document/")
    # The action answers its form with a redirect to S3: the one page form-action lets go there.
    page.check(f"input[name=_selected_action][value='{existing.pk}']")
    page.select_option("select[name=action]", "open_presigned_download")
    with page.expect_download(timeout=15_000) as download:
        page.click("button[name=index]")
    assert download.value.suggested_filename == "kyc.pdf"
    witness.visit(page, f"{staff_base}/admin/documents/document/{existing.pk}/change/")
    witness.visit(page, f"{staff_base}/admin/analytics/?tenant={tenant.pk}")
    page.wait_for_function("window.metisCharts && window.metisCharts.length === 5")
    assert all(non_blank_canvases(page).values())
    witness.visit(page, f"{staff_base}/admin/backups/backuprun/dashboard/")
    # The Monitoring page: two minutes of samples, every chart drawn from its json_script.
    for minutes_ago in (1, 0):
        services.metrics_sample_record(now=now() - timedelta(minutes=minutes_ago))
    witness.visit(page, f"{staff_base}/admin/monitoring/?window=1h")
    page.wait_for_function(
        "window.metisCharts && window.metisCharts.length === "
        "JSON.parse(document.getElementById('monitoring-data').textContent).charts.length"
    )
    drawn = non_blank_canvases(page)
    assert len(drawn) >= 10 and all(drawn.values())
    assert page.locator(".monitoring-tile").count() >= 10
    witness.visit(page, f"{staff_base}/admin/backups/backuprun/")
    # django-celery-beat's crontab helper, moved out of its inline script, still explains a choice.
    witness.visit(page, f"{staff_base}/admin/django_celery_beat/periodictask/add/")
    page.select_option("#id_crontab", index=1)
    assert "Translation: " in page.text_content(".field-crontab .help")
    exports.export_run()
    witness.visit(page, f"{staff_base}/admin/analytics/workbench/")
    page.click("button[value=html]")
    page.wait_for_selector("#workbench-result")

    # Reports travel on their own: give any straggler time to land (waiting in the page, so
    # that Playwright keeps delivering the page's events meanwhile).
    page.wait_for_timeout(1000)
    assert witness.violations == []
    assert witness.console == []
    assert witness.reports() == []

    # --- A refusal on purpose: each witness sees it.
    page.evaluate("document.body.setAttribute('style', 'background: red')")
    deadline = time.monotonic() + 10
    while not witness.reports() and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert [v["directive"] for v in witness.violations] == ["style-src-attr"]
    assert len(witness.console) == 1
    assert witness.reports() == [
        f"CSP violation on {staff_base}/admin/analytics/workbench/: style-src-attr blocked "
        "inline (enforce)"
    ]
    context.close()


def test_staff_sign_in_and_two_factor_pages_work_under_the_policy(
    committed_live_server, browser, staff_user_model, report_log
):
    # Both ways through the second step: a staff member with an app, and one enrolling one (the
    # QR code is inline SVG: drawn by attributes, no style).
    enrolled = staff_user_model.objects.create_user("ann", password=TEST_PASSWORD, is_staff=True)
    app = staff.authenticator_app(enrolled)
    staff_user_model.objects.create_user("ben", password=TEST_PASSWORD, is_staff=True)
    base = f"http://{settings.METIS_BASE_DOMAIN}:{committed_live_server.url.rsplit(':', 1)[1]}"

    for username in ("ann", "ben"):
        context = browser.new_context()
        witness = Witness(context, report_log)
        page = context.new_page()
        witness.visit(page, f"{base}/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", TEST_PASSWORD)
        page.click("input[type=submit]")
        if username == "ann":
            page.wait_for_url("**/two-factor/verify/**")
            page.fill("#id_code", staff.next_code(app))
        else:
            page.wait_for_url("**/two-factor/setup/**")
            assert page.locator(".two-factor-qr svg path").count() == 1
            secret = page.text_content("#two-factor-secret").replace(" ", "")
            page.fill("#id_code", pyotp.TOTP(secret).now())
        page.click("input[type=submit]")
        if username == "ben":
            page.wait_for_selector("#backup-codes")
            page.click("text=Continue to the admin")
        page.wait_for_url(f"{base}/admin/")
        witness.visit(page, f"{base}/admin/two-factor/")
        page.wait_for_timeout(1000)
        assert witness.violations == [], username
        assert witness.console == [], username
        context.close()
    assert report_log.messages == []
