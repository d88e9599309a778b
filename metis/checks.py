"""Deploy checks (`manage.py check --deploy`): production runs on real services only.

Every service has an embedded fallback so `make run` works on a bare machine (settings.py); with
DEBUG off, each fallback still in use is an error naming it and the variable that replaces it,
and so is a connection to a PostgreSQL on another machine that does not insist on TLS.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks

# The variable each database alias is read from (metis/settings.py).
DATABASE_VARIABLES = {
    "default": "DATABASE_URL",
    "owner": "DATABASE_OWNER_URL",
    "staff_read": "DATABASE_STAFF_READ_URL",
}
# sslmode values under which libpq refuses to talk to the server in clear.
TLS_SSLMODES = {"require", "verify-ca", "verify-full"}
_LOCAL_CACHE_BACKENDS = {
    "django.core.cache.backends.filebased.FileBasedCache": "the file cache under var/",
    "django.core.cache.backends.locmem.LocMemCache": "a per-process memory cache",
    "django.core.cache.backends.dummy.DummyCache": "no cache at all",
}
# pgserver's socket directory when the data directory's path is too long for a socket
# (pgserver.utils.find_suitable_socket_dir); otherwise the socket is in var/pgdata itself.
_PGSERVER_RUNTIME_DIR = "python_PostgresServer"


@checks.register(checks.Tags.security, deploy=True)
def embedded_fallbacks_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Return an error for each embedded fallback in use while DEBUG is off."""
    if settings.DEBUG:
        return []
    errors: list[checks.CheckMessage] = []
    if not settings.CLICKHOUSE_URL:
        errors.append(
            checks.Error(
                "CLICKHOUSE_URL is unset: analytics events go to the embedded ClickHouse engine "
                f"(chdb) in {settings.CLICKHOUSE_CHDB_PATH}, which one process at a time may open.",
                hint="Set CLICKHOUSE_URL to the ClickHouse server.",
                id="metis.E101",
            )
        )
    local_caches = [
        f"{alias} ({_LOCAL_CACHE_BACKENDS[cache['BACKEND']]})"
        for alias, cache in settings.CACHES.items()
        if cache["BACKEND"] in _LOCAL_CACHE_BACKENDS
    ]
    if local_caches:
        errors.append(
            checks.Error(
                f"REDIS_URL is unset: the caches {', '.join(local_caches)} are embedded "
                "fallbacks, so sessions, sign-in throttling and cached queries are not shared "
                "between machines.",
                hint="Set REDIS_URL to the Redis server.",
                id="metis.E102",
            )
        )
    broker = str(settings.CELERY_BROKER_URL)
    results = str(settings.CELERY_RESULT_BACKEND)
    if broker.startswith(("filesystem://", "memory://")) or results.startswith("file://"):
        errors.append(
            checks.Error(
                f"REDIS_URL is unset: Celery's broker is {broker.split('://')[0]}:// and its "
                f"results go to {results.split('://')[0]}://, Kombu's embedded fallbacks "
                "(tasks never leave this machine).",
                hint="Set REDIS_URL (or CELERY_BROKER_URL and CELERY_RESULT_BACKEND).",
                id="metis.E103",
            )
        )
    errors.extend(_object_storage_errors())
    for alias, database in settings.DATABASES.items():
        errors.extend(_database_errors(alias, database))
    return errors


def _object_storage_errors() -> list[checks.CheckMessage]:
    if not settings.AWS_STORAGE_BUCKET_NAME:
        return [
            checks.Error(
                "AWS_STORAGE_BUCKET_NAME is unset: documents, exports and backups have no bucket.",
                hint="Set AWS_STORAGE_BUCKET_NAME (and AWS_S3_ENDPOINT_URL unless on AWS).",
                id="metis.E104",
            )
        ]
    endpoint = settings.AWS_S3_ENDPOINT_URL
    if endpoint and _is_loopback(urlsplit(endpoint).hostname or ""):
        return [
            checks.Error(
                f"AWS_S3_ENDPOINT_URL is {endpoint}, on this machine: the embedded S3 server "
                "`make run` starts (SeaweedFS), and presigned download links there reach no "
                "other machine's browser.",
                hint="Set AWS_S3_ENDPOINT_URL to the S3 server's public endpoint "
                "(leave it empty for AWS).",
                id="metis.E105",
            )
        ]
    return []


def _database_errors(alias: str, database: dict) -> list[checks.CheckMessage]:
    variable = DATABASE_VARIABLES.get(alias, f"DATABASES[{alias!r}]")
    host = str(database.get("HOST") or "")
    if _is_embedded_postgres(host):
        return [
            checks.Error(
                f"{variable} points at the embedded PostgreSQL (pgserver, socket in {host}) "
                "that `make run` starts.",
                hint=f"Set {variable} to the PostgreSQL server.",
                id="metis.E106",
            )
        ]
    sslmode = database.get("OPTIONS", {}).get("sslmode")
    if not _is_local_host(host) and sslmode not in TLS_SSLMODES:
        return [
            checks.Error(
                f"{variable} connects to {host} without requiring TLS "
                f"(sslmode={sslmode or 'prefer, the default'}): passwords and tenant data could "
                "cross the network in clear, or to an impostor.",
                hint=f"Add ?sslmode=verify-full&sslrootcert=<the server's CA file> to {variable} "
                "(sslmode=require encrypts but does not check who answers).",
                id="metis.E107",
            )
        ]
    return []


def _is_embedded_postgres(host: str) -> bool:
    if not host.startswith("/"):
        return False
    path = Path(host)
    return path == Path(settings.VAR_DIR) / "pgdata" or _PGSERVER_RUNTIME_DIR in path.parts


def _is_local_host(host: str) -> bool:
    """An empty host or a directory is a Unix socket: this machine, no network to cross."""
    return not host or host.startswith("/") or _is_loopback(host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
