"""Settings: every variable they read is documented in .env.example; production's HTTPS settings
come from the environment."""

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.metis import test_checks

ROOT = Path(__file__).resolve().parents[2]


def test_every_environment_variable_is_documented_in_env_example():
    source = (ROOT / "metis" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', source))
    documented = set(
        re.findall(r"^#?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    assert read, "the pattern found no variables: fix the test"
    assert read - documented == set()


PROBE = """
import json
from django.conf import settings
from django.test import Client

client = Client(HTTP_HOST="admin.metis.example.com")
plain = client.get("/csp-report/")
proxied = client.get("/csp-report/", headers={"X-Forwarded-Proto": "https"})
print(json.dumps({
    "redirect": [plain.status_code, plain.get("Location")],
    "proxied": [proxied.status_code, proxied.get("Strict-Transport-Security")],
    "cookies": [
        [settings.SESSION_COOKIE_NAME, settings.SESSION_COOKIE_SECURE,
         settings.SESSION_COOKIE_DOMAIN, settings.SESSION_COOKIE_PATH],
        [settings.CSRF_COOKIE_NAME, settings.CSRF_COOKIE_SECURE,
         settings.CSRF_COOKIE_DOMAIN, settings.CSRF_COOKIE_PATH],
    ],
    "csrf_origins": settings.CSRF_TRUSTED_ORIGINS,
    "probes": {
        path: [answer.status_code, answer.get("Location")]
        for path in ("/healthz", "/readyz", "/metrics")
        for answer in [client.get(path)]
    },
}))
"""


def probe(environment: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", PROBE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_production_environment_serves_https_only_with_host_only_secure_cookies():
    # The page needs no database: only the middleware's answers and the settings are read.
    seen = probe(test_checks.production_environment())

    assert seen["redirect"] == [301, "https://admin.metis.example.com/csp-report/"]
    assert seen["proxied"] == [405, "max-age=31536000; includeSubDomains; preload"]
    assert seen["cookies"] == [
        ["__Host-sessionid", True, None, "/"],
        ["__Host-csrftoken", True, None, "/"],
    ]
    assert seen["csrf_origins"] == [
        "https://*.metis.example.com",
        "https://admin.metis.example.com",
    ]
    # The platform's probes and Prometheus call over plain http: answered, never redirected.
    for path, (status, location) in seen["probes"].items():
        assert status != 301 and location is None, (path, status, location)


def test_without_https_cookies_keep_plain_names_and_nothing_redirects():
    environment = test_checks.production_environment()
    for name in ("DJANGO_HTTPS", "DJANGO_SECURE_HSTS_PRELOAD", "DJANGO_SECURE_PROXY_SSL_HEADER"):
        del environment[name]

    seen = probe(environment)

    assert seen["redirect"][0] == 405
    assert seen["proxied"] == [405, None]
    assert seen["cookies"] == [["sessionid", False, None, "/"], ["csrftoken", False, None, "/"]]
