"""TLS to PostgreSQL: the options in DATABASE_URL's query reach libpq through the settings.

Against a real server started with ssl=on and a certificate from a CA made for the test
(tests/support/tls_postgres.py). Each connection is made by `manage.py shell` in a process of its
own, so the URL goes through metis/settings.py exactly as in production.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import tls_postgres

ROOT = Path(__file__).resolve().parents[2]
WHO_AM_I = (
    "from django.db import connection\n"
    "with connection.cursor() as cursor:\n"
    "    cursor.execute('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()')\n"
    "    print('ssl', *cursor.fetchone())\n"
)


@pytest.fixture(scope="module")
def server():
    server = tls_postgres.tls_postgres_start()
    yield server
    server.stop()


def connect_through_settings(url: str) -> subprocess.CompletedProcess:
    environment = {
        "DJANGO_SECRET_KEY": "tls-test-" + "x" * 50,
        "DATABASE_URL": url,
        "DATABASE_OWNER_URL": url,
        "METIS_ENV_FILE": "/dev/null",
        # Through the connection pool, as the app connects; a refused connection fails its
        # wait for one in seconds, not DATABASE_POOL_TIMEOUT's default 30.
        "DATABASE_POOL_TIMEOUT": "3",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", WHO_AM_I],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_verify_full_with_the_servers_ca_connects_over_tls(server):
    result = connect_through_settings(server.url())

    assert result.returncode == 0, result.stderr
    ssl, version = result.stdout.split()[-2:]
    assert ssl == "True"
    assert version.startswith("TLSv1.")


def test_verify_full_refuses_a_server_whose_certificate_another_ca_signed(server):
    result = connect_through_settings(server.url(ca_file=server.other_ca_file))

    assert result.returncode != 0
    assert "certificate verify failed" in result.stderr


def test_the_server_refuses_a_connection_without_tls(server):
    result = connect_through_settings(server.url(sslmode="disable"))

    assert result.returncode != 0
    assert "no encryption" in result.stderr
