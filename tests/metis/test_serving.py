"""Serving as production does: gunicorn (metis/gunicorn.py) with DEBUG off, static files from
whitenoise after collectstatic, with hashed names and compressed copies.

Chromium opens the admin's analytics dashboard through gunicorn: the admin's CSS, Chart.js and
the dashboard script load (200, hashed names, compressed, cached for good) and the charts draw.
The server runs against this test's database, ClickHouse files and a STATIC_ROOT of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from analytics import schema
from tests.analytics.conftest import insert_events, now
from tests.support.browser import non_blank_canvases
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.committed


def on_database(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


@pytest.fixture
def chdb(settings, tmp_path):
    """A ClickHouse database of this test's own (the embedded engine), shared with the server."""
    settings.CLICKHOUSE_URL = ""
    settings.CLICKHOUSE_CHDB_PATH = tmp_path / "chdb"
    settings.CLICKHOUSE_DATABASE = f"serve_{uuid.uuid4().hex[:8]}"
    schema.migrate()


@pytest.fixture
def gunicorn(committed_db, chdb, tmp_path):
    """gunicorn on a free port with DEBUG off and the manifest storage; yield its base URL."""
    name = settings.DATABASES["default"]["NAME"]
    environment = {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # the sessions the test signs in are valid
        "DATABASE_URL": on_database(settings.DATABASE_URL, name),
        "DATABASE_OWNER_URL": on_database(settings.DATABASE_OWNER_URL, name),
        "DATABASE_STAFF_READ_URL": on_database(settings.DATABASE_STAFF_READ_URL, name),
        "CLICKHOUSE_URL": "",
        "CLICKHOUSE_CHDB_PATH": str(settings.CLICKHOUSE_CHDB_PATH),
        "CLICKHOUSE_DATABASE": settings.CLICKHOUSE_DATABASE,
        "DJANGO_STATIC_MANIFEST": "true",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "8",
        # Its own cache keys: a host's cached tenant names a row of this test's database only.
        "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
    }
    manage = [sys.executable, "manage.py"]
    # The release step's second half (the first, migrate, made the test database).
    subprocess.run(
        [*manage, "collectstatic", "--no-input", "--verbosity", "0"],
        cwd=ROOT,
        env=environment,
        check=True,
        timeout=300,
    )
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "python:metis.gunicorn"],
            cwd=ROOT,
            env={**environment, "GUNICORN_BIND": f"127.0.0.1:{port}"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://{settings.METIS_BASE_DOMAIN}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=5)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_admin_css_and_chart_js_load_through_gunicorn_with_debug_off(
    gunicorn, browser, staff_client, tenant
):
    insert_events(
        [
            (tenant.pk, kind, '{"document_type": "pan"}', uuid.uuid4(), now() - timedelta(hours=h))
            for h in range(0, 150, 6)
            for kind in ("auth.sign_in", "document.uploaded")
        ]
    )
    context = browser.new_context()
    cookie = staff_client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": gunicorn}])
    statics = {}
    page = context.new_page()
    page.on(
        "response",
        lambda response: (
            statics.__setitem__(urlsplit(response.url).path, response)
            if "/static/" in response.url
            else None
        ),
    )

    page.goto(f"{gunicorn}/admin/analytics/?tenant={tenant.pk}")
    page.wait_for_function("window.metisCharts && window.metisCharts.length === 5")

    assert all(non_blank_canvases(page).values())
    for original in (
        "admin/css/base.css",
        "tenants/admin.css",
        "analytics/charts.css",
        "analytics/vendor/chart-4.6.1.umd.js",
        "analytics/dashboard.js",
    ):
        stem, suffix = original.rsplit(".", 1)
        hashed = [
            path
            for path in statics
            if path.startswith(f"/static/{stem}.") and path.endswith(f".{suffix}")
        ]
        assert len(hashed) == 1, (original, sorted(statics))
        response = statics[hashed[0]]
        headers = response.all_headers()
        assert response.status == 200
        assert len(hashed[0].rsplit(".", 2)[1]) == 12  # the content hash in the name
        assert headers["content-encoding"] in {"br", "gzip"}
        assert "immutable" in headers["cache-control"]
    context.close()
