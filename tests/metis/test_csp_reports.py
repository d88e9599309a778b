"""The Content Security Policy: its header on every host, and the report endpoint that logs what
browsers report (metis/csp_reports.py)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from metis import csp_reports
from tests.conftest import host_of

ROOT = Path(__file__).resolve().parents[2]
URL = "/csp-report/"

# What Chromium posts for `report-uri` when a page carries a style attribute.
CHROMIUM_REPORT = {
    "csp-report": {
        "document-uri": "http://acme.localhost:8000/documents/",
        "referrer": "",
        "violated-directive": "style-src-attr",
        "effective-directive": "style-src-attr",
        "original-policy": "default-src 'self'; style-src 'self'; report-uri /csp-report/",
        "disposition": "enforce",
        "blocked-uri": "inline",
        "line-number": 12,
        "source-file": "http://acme.localhost:8000/documents/",
        "status-code": 200,
        "script-sample": "",
    }
}
# The Reporting API's batch (`report-to`), as Chromium sends it.
REPORTING_API_BATCH = [
    {
        "age": 12,
        "type": "csp-violation",
        "url": "https://acme.metis.example/usage/",
        "user_agent": "Mozilla/5.0",
        "body": {
            "documentURL": "https://acme.metis.example/usage/",
            "blockedURL": "https://cdn.example.net/chart.js",
            "effectiveDirective": "script-src-elem",
            "disposition": "enforce",
            "originalPolicy": "script-src 'self'",
            "statusCode": 200,
        },
    },
    {"age": 3, "type": "deprecation", "url": "https://acme.metis.example/", "body": {}},
]


def post(client: Client, body, content_type: str = "application/csp-report"):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(URL, data, content_type=content_type)


def csp_records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "metis.csp"]


# --- The endpoint ----------------------------------------------------------------------------
# The staff-host tests request no database: pytest-django fails any test that touches it, so
# they also show that a report reaches the log without a query.


def test_a_chromium_report_is_logged_with_page_directive_and_blocked_uri(caplog):
    caplog.set_level(logging.WARNING, logger="metis.csp")

    response = post(Client(HTTP_HOST=settings.METIS_BASE_DOMAIN), CHROMIUM_REPORT)

    assert response.status_code == 204
    assert csp_records(caplog) == [
        "CSP violation on http://acme.localhost:8000/documents/: style-src-attr blocked inline "
        "(enforce)"
    ]
    assert caplog.records[0].levelno == logging.WARNING


def test_a_reporting_api_batch_logs_each_csp_violation_and_skips_other_reports(caplog):
    caplog.set_level(logging.WARNING, logger="metis.csp")

    response = post(
        Client(HTTP_HOST=settings.METIS_BASE_DOMAIN),
        REPORTING_API_BATCH,
        content_type="application/reports+json",
    )

    assert response.status_code == 204
    assert csp_records(caplog) == [
        "CSP violation on https://acme.metis.example/usage/: script-src-elem blocked "
        "https://cdn.example.net/chart.js (enforce)"
    ]


def test_plain_json_is_accepted_too(caplog):
    caplog.set_level(logging.WARNING, logger="metis.csp")
    response = post(
        Client(HTTP_HOST=settings.METIS_BASE_DOMAIN), CHROMIUM_REPORT, "application/json"
    )
    assert response.status_code == 204
    assert len(csp_records(caplog)) == 1


def test_a_report_from_an_unknown_visitor_on_a_tenant_host_is_logged(tenant, caplog):
    caplog.set_level(logging.WARNING, logger="metis.csp")

    response = post(Client(HTTP_HOST=host_of(tenant)), CHROMIUM_REPORT)

    assert response.status_code == 204
    assert len(csp_records(caplog)) == 1


def test_a_signed_in_tenant_users_report_is_logged(tenant_client, caplog):
    caplog.set_level(logging.WARNING, logger="metis.csp")
    assert post(tenant_client, CHROMIUM_REPORT).status_code == 204
    assert len(csp_records(caplog)) == 1


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'"inline"', b"{}", b'{"csp-report": "inline"}', b"\xff\xfe"],
)
def test_malformed_reports_are_a_400_and_log_nothing(body, caplog):
    caplog.set_level(logging.WARNING, logger="metis.csp")
    response = post(Client(HTTP_HOST=settings.METIS_BASE_DOMAIN), body)
    assert response.status_code == 400
    assert csp_records(caplog) == []


def test_a_report_over_16_kib_is_a_413_and_logs_nothing(caplog):
    caplog.set_level(logging.WARNING, logger="metis.csp")
    report = {"csp-report": {**CHROMIUM_REPORT["csp-report"], "script-sample": "x" * 16 * 1024}}

    response = post(Client(HTTP_HOST=settings.METIS_BASE_DOMAIN), report)

    assert response.status_code == 413
    assert csp_records(caplog) == []


def test_a_report_nested_past_the_depth_limit_is_a_400_not_a_recursion_error(caplog):
    caplog.set_level(logging.WARNING, logger="metis.csp")
    body = "[" * 8000 + "]" * 8000  # 16,000 bytes: under the size limit

    response = post(Client(HTTP_HOST=settings.METIS_BASE_DOMAIN), body)

    assert response.status_code == 400
    assert "nested too deeply" in response.content.decode()
    assert csp_records(caplog) == []


def test_a_report_of_exactly_16_kib_is_read():
    report = dict(CHROMIUM_REPORT["csp-report"], **{"script-sample": ""})
    padding = csp_reports.MAX_BODY_BYTES - len(json.dumps({"csp-report": report}))
    report["script-sample"] = "x" * padding
    body = json.dumps({"csp-report": report})
    assert len(body) == csp_reports.MAX_BODY_BYTES

    assert post(Client(HTTP_HOST=settings.METIS_BASE_DOMAIN), body).status_code == 204


def test_get_is_a_405():
    assert Client(HTTP_HOST=settings.METIS_BASE_DOMAIN).get(URL).status_code == 405


def test_a_form_post_is_a_415():
    response = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN).post(URL, {"csp-report": "x"})
    assert response.status_code == 415


def test_logged_fields_are_short_single_lines(caplog):
    caplog.set_level(logging.WARNING, logger="metis.csp")
    forged = "https://evil.example/\nCSP violation on https://bank.example/: nothing" + "a" * 500
    report = {"csp-report": {**CHROMIUM_REPORT["csp-report"], "blocked-uri": forged}}

    post(Client(HTTP_HOST=settings.METIS_BASE_DOMAIN), report)

    [message] = csp_records(caplog)
    assert "\n" not in message
    blocked = message.split(" blocked ", 1)[1]
    assert blocked.startswith("https://evil.example/?CSP violation")
    assert len(blocked) < csp_reports.MAX_FIELD_CHARS + len("… (enforce)") + 1


# --- The header ------------------------------------------------------------------------------


def directives(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


def assert_strict(policy: dict[str, str]) -> None:
    assert policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] == policy["script-src"] == policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["report-uri"] == URL
    assert not any("unsafe" in sources or "*" in sources for sources in policy.values())


def test_tenant_pages_carry_the_policy(tenant_client, tenant):
    for response in (tenant_client.get("/"), Client(HTTP_HOST=host_of(tenant)).get("/login/")):
        assert response.status_code == 200
        assert_strict(directives(response))
        assert "Content-Security-Policy-Report-Only" not in response.headers


def test_admin_pages_carry_the_policy(staff_client):
    response = staff_client.get("/admin/")
    assert response.status_code == 200
    policy = directives(response)
    assert_strict(policy)
    assert policy["form-action"] == "'self'"


def test_error_pages_carry_the_policy_too(tenant):
    response = Client(HTTP_HOST=f"nobody.{settings.METIS_BASE_DOMAIN}").get("/")
    assert response.status_code == 404
    assert_strict(directives(response))


def test_csp_report_only_sends_the_same_policy_without_enforcing_it():
    def policies(report_only: str) -> dict:
        script = (
            "import json, metis.settings as s; print(json.dumps(["
            "getattr(s, 'CONTENT_SECURITY_POLICY', None), "
            "getattr(s, 'CONTENT_SECURITY_POLICY_REPORT_ONLY', None)]))"
        )
        env = {**os.environ, "CSP_REPORT_ONLY": report_only}
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, check=True
        )
        return json.loads(out.stdout)

    enforced, reported = policies("false")
    assert reported is None and enforced["DIRECTIVES"]["frame-ancestors"] == ["'none'"]
    assert policies("true") == [None, enforced]
