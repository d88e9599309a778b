"""Settings for Metis Storage, read from the environment through django-environ.

Every service has an embedded default so `make run` works on a bare machine; an environment
variable points each at the real server instead. `.env.example` documents every variable.
Precedence: the process environment, then `.env`, then the file METIS_ENV_FILE names
(default `var/local.env`, written by `scripts/local_services.py` for the embedded services).
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from tenants.pool import BreakerConnection, connection_reset

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
for env_file in (BASE_DIR / ".env", Path(env.str("METIS_ENV_FILE", str(VAR_DIR / "local.env")))):
    if env_file.exists():
        env.read_env(env_file, overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Required with DEBUG off: sessions, password-reset links and the tenant seal key (unless
# TENANT_SEAL_KEY is set) derive from it, so a fixed fallback would be a key everyone knows.
# `make run` and `make test` generate one into var/local.env and var/test.env.
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set and DEBUG is off: set it to a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))'); `make run` and "
            "`make test` write one into var/local.env and var/test.env."
        )
    SECRET_KEY = "insecure-local-development-key-change-me"

# Tenants live at <subdomain>.<base domain>; the admin lives on the bare domain or ADMIN_HOSTS.
METIS_BASE_DOMAIN = env("METIS_BASE_DOMAIN", default="localhost")
METIS_ADMIN_HOSTS = env.list(
    "METIS_ADMIN_HOSTS", default=[METIS_BASE_DOMAIN, f"admin.{METIS_BASE_DOMAIN}", "127.0.0.1"]
)
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=[*METIS_ADMIN_HOSTS, f".{METIS_BASE_DOMAIN}", "testserver"]
)
# Every tenant subdomain and each admin host, over https (a TLS-terminating proxy in front sends
# Origin: https://..., which a same-origin check on an http request would refuse).
CSRF_TRUSTED_ORIGINS = env.list(
    "DJANGO_CSRF_TRUSTED_ORIGINS",
    default=[f"https://*.{METIS_BASE_DOMAIN}", *(f"https://{h}" for h in METIS_ADMIN_HOSTS)],
)
# Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For names the client, for the
# audit trail and sign-in throttling (tenants/client_ip.py). Empty: REMOTE_ADDR is the client.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

INSTALLED_APPS = [
    "tenants",
    "metis.apps.MetisAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_celery_beat",
    "metis.events",
    "documents",
    "analytics",
    "privacy",
    "backups",
    "monitoring",
    "audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything that may write: a request that wrote reads its writes (tenants/replica.py).
    "tenants.middleware.ReadYourWritesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): did this session pass a second factor (tenants.two_factor)?
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After auth: staff tenant choices need request.user.
    "tenants.middleware.TenantMiddleware",
]

ROOT_URLCONF = "metis.urls"
TENANT_URLCONF = "metis.tenant_urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "tenants.context_processors.database_released",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "documents.context_processors.primary_storage",
            ],
        },
    },
]

WSGI_APPLICATION = "metis.wsgi.application"

# --- PostgreSQL -------------------------------------------------------------------------------
# `default` is the runtime role that row-level security binds; `owner` owns the tables and runs
# migrations. Neither is a superuser; `DATABASE_ADMIN_URL` (optional) is only for creating roles.
DATABASE_URL = env("DATABASE_URL", default="postgres://metis_app@127.0.0.1:5432/metis")
DATABASE_OWNER_URL = env(
    "DATABASE_OWNER_URL", default="postgres://metis_owner@127.0.0.1:5432/metis"
)
DATABASE_ADMIN_URL = env("DATABASE_ADMIN_URL", default="")
# The key that seals tenant transactions (tenants/seal.py); by default derived from SECRET_KEY.
# `migrate` installs it where only the owner role can read it.
TENANT_SEAL_KEY = env("TENANT_SEAL_KEY", default="")
# Staff all-tenants reads: a SELECT-only role the all-tenants policies admit (tenants/roles.py).
# By default the runtime URL with the user `metis_staff_read`.
DATABASE_STAFF_READ_URL = env(
    "DATABASE_STAFF_READ_URL",
    default=urlsplit(DATABASE_URL)
    ._replace(netloc="metis_staff_read@" + urlsplit(DATABASE_URL).netloc.rsplit("@", 1)[-1])
    .geturl(),
)
DATABASE_BEHIND_PGBOUNCER = env.bool("DATABASE_BEHIND_PGBOUNCER", default=False)

DATABASE_POOL = {
    "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=5),
    "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=25),
    "max_idle": env.float("DATABASE_POOL_MAX_IDLE", default=30 * 60),
    "max_lifetime": env.float("DATABASE_POOL_MAX_LIFETIME", default=60 * 60),
    # How long a request waits for a free connection before it gets a 503 (metis/unavailable.py):
    # a person waiting 30 s for "busy" is worse than being told at once to retry.
    "timeout": env.float("DATABASE_POOL_TIMEOUT", default=5),
    # Each connect the pool opens tells tenants.pool's breaker whether PostgreSQL answered.
    "connection_class": BreakerConnection,
}
# After a refused connect, a request that needs a new connection tries one quick connect of
# its own (one at a time) and answers 503 at once if refused, instead of after the pool's
# timeout (tenants/pool.py).
DATABASE_DOWN_BREAKER = env.bool("DATABASE_DOWN_BREAKER", default=True)


def _database(url: str, *, pooled: bool) -> dict:
    config = env.db_url_config(url)
    # A Unix-socket directory arrives percent-encoded in the host part (as libpq URLs allow).
    config["HOST"] = unquote(config["HOST"])
    # Django's PostgreSQL backend, sealing every transaction for its tenant context.
    config["ENGINE"] = "tenants.postgres"
    config["CONN_MAX_AGE"] = 0  # the pool, not Django, keeps connections open
    # The pool tries a connection (one empty round trip) before it hands it out: after a
    # PostgreSQL restart every idle connection in it is dead, and without this each one would
    # fail a request, a task or beat's schedule read before the pool noticed.
    config["CONN_HEALTH_CHECKS"] = env.bool("DATABASE_POOL_CHECK", default=True)
    options = config.setdefault("OPTIONS", {})
    if pooled:
        # A returned connection forgets its session (DISCARD ALL): nothing reaches the next user.
        options["pool"] = {**DATABASE_POOL, "reset": connection_reset}
    # Transaction-mode PgBouncer cannot keep a named cursor open between transactions.
    config["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_BEHIND_PGBOUNCER
    return config


DATABASES = {
    "default": _database(DATABASE_URL, pooled=env.bool("DATABASE_POOL_ENABLED", default=True)),
    "owner": _database(DATABASE_OWNER_URL, pooled=False),
    "staff_read": _database(DATABASE_STAFF_READ_URL, pooled=False),
}


def _same_server_as(url: str, *, user_of: str) -> str:
    """Return `url` with the user (and password) of `user_of`: the same role on another server."""
    login = urlsplit(user_of).netloc.rsplit("@", 1)[0] if "@" in urlsplit(user_of).netloc else ""
    server = urlsplit(url).netloc.rsplit("@", 1)[-1]
    return urlsplit(url)._replace(netloc=f"{login}@{server}" if login else server).geturl()


# A streaming standby of the same cluster (tenants/replica.py): unset, there is none and every
# read goes to the primary. The roles, grants, seal key and RLS policies replicate with the
# schema, so it is the runtime role's URL on the standby's host; the staff read role's URL there
# is derived the same way unless DATABASE_REPLICA_STAFF_READ_URL names it.
DATABASE_REPLICA_URL = env("DATABASE_REPLICA_URL", default="")
DATABASE_REPLICA_STAFF_READ_URL = env(
    "DATABASE_REPLICA_STAFF_READ_URL",
    default=_same_server_as(DATABASE_REPLICA_URL, user_of=DATABASE_STAFF_READ_URL)
    if DATABASE_REPLICA_URL
    else "",
)
# Past this replay lag (seconds) replica reads go to the primary; the lag is read at most once
# per REPLICA_LAG_CHECK_SECONDS per process.
REPLICA_MAX_LAG_SECONDS = env.float("REPLICA_MAX_LAG_SECONDS", default=5)
REPLICA_LAG_CHECK_SECONDS = env.float("REPLICA_LAG_CHECK_SECONDS", default=2)
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = _database(
        DATABASE_REPLICA_URL, pooled=env.bool("DATABASE_POOL_ENABLED", default=True)
    )
    DATABASES["replica_staff_read"] = _database(DATABASE_REPLICA_STAFF_READ_URL, pooled=False)
# The owner alias is for migrations and maintenance only; no router sends app queries to it.
# Inside tenants.replica.replica_reads() reads go to the replica while it keeps up (first
# router); reads of tenant tables go to `staff_read` only inside all_tenants_context().
DATABASE_ROUTERS = [
    "tenants.replica_router.ReplicaReadRouter",
    "tenants.routers.AllTenantsReadRouter",
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Sign-in throttling (tenants/throttle.py), counted in the `throttle` cache -------------------
# Failures within the window lock the account (any email or username tried, whether or not it
# exists) or the client address for the lockout period; staff can release a lock in the admin.
# The address limit is higher: an office behind one NAT address shares it.
SIGN_IN_WINDOW_MINUTES = env.int("SIGN_IN_WINDOW_MINUTES", default=15)
SIGN_IN_ACCOUNT_FAILURES = env.int("SIGN_IN_ACCOUNT_FAILURES", default=10)
SIGN_IN_ADDRESS_FAILURES = env.int("SIGN_IN_ADDRESS_FAILURES", default=30)
SIGN_IN_LOCKOUT_MINUTES = env.int("SIGN_IN_LOCKOUT_MINUTES", default=15)
# Password reset mails an hour, per email asked for and per client address.
PASSWORD_RESET_EMAILS_PER_HOUR = env.int("PASSWORD_RESET_EMAILS_PER_HOUR", default=3)
PASSWORD_RESET_REQUESTS_PER_HOUR = env.int("PASSWORD_RESET_REQUESTS_PER_HOUR", default=20)

# --- Staff two-factor (tenants/two_factor.py) ---------------------------------------------------
# All-tenants mode and the SQL workbench want a second factor confirmed this many minutes ago.
STAFF_RECONFIRM_MINUTES = env.int("STAFF_RECONFIRM_MINUTES", default=5)
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="Metis Storage")

# --- Redis: cache, sessions, Celery ------------------------------------------------------------
# With no REDIS_URL, the embedded defaults still work across processes (web, worker, beat):
# a file-based cache and Kombu's filesystem transport, both under var/.
REDIS_URL = env("REDIS_URL", default="")

_TENANT_KEY_FUNCTION = "tenants.cache.make_tenant_key"
# How long a tenant host's lookup (tenants/lookup.py) may be served from the cache. Every ORM
# write of a tenant drops its entries at once; this bounds only writes that bypass the ORM
# (raw SQL, a database restore) or a drop lost while the cache was unreachable.
TENANT_CACHE_SECONDS = env.int("TENANT_CACHE_SECONDS", default=60)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="metis"),
            "KEY_FUNCTION": _TENANT_KEY_FUNCTION,
            "TIMEOUT": 15 * 60,
        },
        "sessions": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="metis") + ":sessions",
        },
        "throttle": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="metis") + ":throttle",
            "TIMEOUT": SIGN_IN_WINDOW_MINUTES * 60,
        },
        # Host → tenant, read before any tenant context exists: keys without the tenant scope.
        "tenants": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="metis") + ":tenants",
            "TIMEOUT": TENANT_CACHE_SECONDS,
        },
    }
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
    CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": VAR_DIR / "cache" / "default",
            "KEY_FUNCTION": _TENANT_KEY_FUNCTION,
            "TIMEOUT": 15 * 60,
        },
        "sessions": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": VAR_DIR / "cache" / "sessions",
        },
        "throttle": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": VAR_DIR / "cache" / "throttle",
            # Its increments re-set the entry with this timeout (Redis keeps a key's own TTL).
            "TIMEOUT": SIGN_IN_WINDOW_MINUTES * 60,
        },
        "tenants": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": VAR_DIR / "cache" / "tenants",
            "TIMEOUT": TENANT_CACHE_SECONDS,
        },
    }
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
    CELERY_RESULT_BACKEND = env(
        "CELERY_RESULT_BACKEND", default=f"file://{VAR_DIR / 'celery-results'}"
    )
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }

# Cached in Redis, kept in PostgreSQL, both under a keyed hash of the cookie (tenants/sessions.py).
SESSION_ENGINE = "tenants.sessions"
SESSION_CACHE_ALIAS = "sessions"
SESSION_COOKIE_AGE = 24 * 60 * 60  # the spec's 24-hour session
SESSION_COOKIE_HTTPONLY = True

CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Task states stay visible (AsyncResult, the admin's job pages) for the spec's 7 days.
CELERY_RESULT_EXPIRES = 7 * 24 * 60 * 60
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# django-celery-beat's, but a database outage never stops beat (metis/scheduler.py).
CELERY_BEAT_SCHEDULER = "metis.scheduler:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Celery: queues, time limits, redelivery (docs/operations.md, "Workers and queues") --------
# Backups and drills run on their own queue and worker (Procfile `worker-backups`, one at a time),
# so a six-hour backup never holds up a drain or a password-reset mail. The catalog's
# housekeeping stays on the default queue: it must not wait behind the backup it reaps.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "backups.reap_dead_jobs": {"queue": "celery"},
    "backups.cleanup_history": {"queue": "celery"},
    "backups.archive_check": {"queue": "celery"},
    "backups.*": {"queue": "backups"},
}
# Every task's limits unless it sets its own (backups and exports: hours; drains: a minute).
# The soft limit raises SoftTimeLimitExceeded in the task, so it can clean up; the hard one
# kills the pool process. Both need the prefork pool (the Procfile's workers use it).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=5 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=6 * 60)
# Late acknowledgement (above) means Redis hands a message to another worker once it has been
# unacknowledged this long, even while the first still runs it. So it must exceed the longest
# hard time limit (a full backup with its restore test, and the drill: 6 h 10 min,
# backups/tasks.py; tests/metis/test_celery.py checks every task); a second line of defence,
# the backup tasks' lock, skips a redelivered backup whose first run is alive. The cost: a
# message whose worker died outright waits this long before it is run again.
CELERY_BROKER_VISIBILITY_TIMEOUT = env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=7 * 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # The filesystem broker's folders (no REDIS_URL) keep; Redis reads the visibility timeout.
    **(CELERY_BROKER_TRANSPORT_OPTIONS if not REDIS_URL else {}),
    "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
}

# --- Object storage (S3) ---------------------------------------------------------------------
# Documents, exports, reports and backup artifacts live in S3 (AWS, or an S3-compatible server:
# SeaweedFS, MinIO). `make run` starts an embedded SeaweedFS and writes these to var/local.env;
# elsewhere point them at a real bucket. metis/objectstore/ is the one door to it.
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", default="")  # empty = AWS itself
AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", default="us-east-1")
AWS_ACCESS_KEY_ID = env("AWS_ACCESS_KEY_ID", default="")
AWS_SECRET_ACCESS_KEY = env("AWS_SECRET_ACCESS_KEY", default="")
AWS_S3_ADDRESSING_STYLE = env("AWS_S3_ADDRESSING_STYLE", default="path")  # or "virtual"
# Server-side encryption: AES256 (SSE-S3) or aws:kms with AWS_S3_SSE_KMS_KEY_ID.
AWS_S3_SSE = env("AWS_S3_SSE", default="AES256")
AWS_S3_SSE_KMS_KEY_ID = env("AWS_S3_SSE_KMS_KEY_ID", default="")
# The principal the bucket policy grants (the spec's MetisAppRole).
AWS_S3_APP_PRINCIPAL_ARN = env(
    "AWS_S3_APP_PRINCIPAL_ARN", default="arn:aws:iam::account:role/MetisAppRole"
)
PRESIGNED_URL_EXPIRES = env.int("PRESIGNED_URL_EXPIRES", default=5 * 60)
# A down S3 server answers with a 503 in seconds, not botocore's minutes: 3 s to connect, 30 s
# for any one socket read or write (a slow part keeps going while it moves), 3 attempts in all
# with botocore's "standard" retries (backoff, and only errors worth retrying).
AWS_S3_CONNECT_TIMEOUT = env.float("AWS_S3_CONNECT_TIMEOUT", default=3)
AWS_S3_READ_TIMEOUT = env.float("AWS_S3_READ_TIMEOUT", default=30)
AWS_S3_MAX_ATTEMPTS = env.int("AWS_S3_MAX_ATTEMPTS", default=3)
AWS_S3_RETRY_MODE = env("AWS_S3_RETRY_MODE", default="standard")  # or legacy, adaptive

# --- Documents: a second region (disaster recovery) ------------------------------------------
# Every stored version is copied to DOCUMENTS_DR_BUCKET (empty: no DR copy). The endpoint,
# region and keys default to the primary's; set them for a bucket on another server or region.
# On AWS, storage_setup writes the bucket's replication rule (DOCUMENTS_DR_REPLICATION_ROLE_ARN);
# elsewhere the documents.replicate_* tasks copy each version (documents/replication.py).
DOCUMENTS_DR_BUCKET = env("DOCUMENTS_DR_BUCKET", default="")
DOCUMENTS_DR_S3_ENDPOINT_URL = env("DOCUMENTS_DR_S3_ENDPOINT_URL", default="")
DOCUMENTS_DR_S3_REGION_NAME = env("DOCUMENTS_DR_S3_REGION_NAME", default="")
DOCUMENTS_DR_ACCESS_KEY_ID = env("DOCUMENTS_DR_ACCESS_KEY_ID", default="")
DOCUMENTS_DR_SECRET_ACCESS_KEY = env("DOCUMENTS_DR_SECRET_ACCESS_KEY", default="")
# With AWS_S3_SSE=aws:kms: the DR region's key (a KMS key lives in one region); empty: the same.
DOCUMENTS_DR_SSE_KMS_KEY_ID = env("DOCUMENTS_DR_SSE_KMS_KEY_ID", default="")
DOCUMENTS_DR_REPLICATION_ROLE_ARN = env("DOCUMENTS_DR_REPLICATION_ROLE_ARN", default="")
# How long one answer about the primary endpoint (up or down) is trusted, and how long the
# probe may take: the download page asks, so a dead server must not hold it.
DOCUMENTS_PRIMARY_CHECK_SECONDS = env.int("DOCUMENTS_PRIMARY_CHECK_SECONDS", default=5)
DOCUMENTS_PRIMARY_PROBE_TIMEOUT = env.float("DOCUMENTS_PRIMARY_PROBE_TIMEOUT", default=1)

STORAGES = {
    "default": {"BACKEND": "metis.objectstore.django_storage.DocumentsStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Documents: uploads --------------------------------------------------------------------------
# Largest file a document may be (bytes); larger uploads stop being read as soon as they pass it.
DOCUMENT_MAX_UPLOAD_BYTES = env.int("DOCUMENT_MAX_UPLOAD_BYTES", default=256 * 1024 * 1024)
# Files over 2.5 MB are spooled to a temporary file, never held in memory.
FILE_UPLOAD_HANDLERS = [
    "documents.uploads.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Outside the tenant transaction: deletes objects whose rows did not commit (documents.consistency).
MIDDLEWARE.insert(
    MIDDLEWARE.index("tenants.middleware.TenantMiddleware"),
    "documents.consistency.PurgeUncommittedObjectsMiddleware",
)

# --- Serving: slow clients (metis/body_deadline.py, metis/gunicorn.py) ---------------------------
# Under gunicorn a request body must arrive within REQUEST_BODY_TIMEOUT seconds plus one second per
# REQUEST_BODY_MIN_RATE bytes received (Apache mod_reqtimeout's defaults), or the client gets a 408
# before Django runs. 0 turns it off: behind a proxy that buffers request bodies (nginx's default).
REQUEST_BODY_TIMEOUT = env.float("REQUEST_BODY_TIMEOUT", default=20)
REQUEST_BODY_MIN_RATE = env.int("REQUEST_BODY_MIN_RATE", default=500)

# --- Content Security Policy (django-csp; metis/csp_reports.py; docs/architecture.md) ----------
# No inline script or style anywhere: every page loads its CSS and JS from static files, and the
# charts read their data from json_script elements, which CSP does not execute. The upload widget
# talks to its own page only (XHR to the form's action): connect-src needs no S3 origin.
# Downloads are navigations to presigned URLs, which fetch directives do not govern; the one form
# that redirects to S3 (the documents change list's download action) widens form-action itself.
# Violations go to /csp-report/ on every host. CSP_REPORT_ONLY=true sends the same policy as
# Content-Security-Policy-Report-Only instead: reported, not enforced (a staged rollout).
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "csp.middleware.CSPMiddleware",
)
_CSP = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],  # the admin's icons; no page uses data: URLs
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "report-uri": ["/csp-report/"],  # served on the staff host and every tenant host
    }
}
if env.bool("CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP
else:
    CONTENT_SECURITY_POLICY = _CSP

# --- Error pages (metis/errors.py) -------------------------------------------------------------
# Django's own CSRF failure page has an inline style the CSP blocks; ours is the 403 page.
CSRF_FAILURE_VIEW = "metis.errors.csrf_failure"

# --- Serving: static files (whitenoise) and HTTPS (docs/operations.md, "Deployment") -----------
# gunicorn serves the static files itself: whitenoise answers /static/ before the rest of the
# middleware, from STATIC_ROOT as `collectstatic` (the release step) left it. With the manifest
# storage (the default) names are hashed by content and have gzip and brotli copies, cached for a
# year; a page naming a file collectstatic did not collect fails rather than link a 404.
# DJANGO_STATIC_MANIFEST=false keeps plain names and needs no collectstatic: the test suite
# (scripts/local_services.py writes it into var/test.env) and anything else that never collects.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
if env.bool("DJANGO_STATIC_MANIFEST", default=True):
    STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))

# DJANGO_HTTPS=true: served over https only (behind a TLS-terminating proxy or load balancer).
# It turns on the redirect from http, HSTS for a year, and Secure cookies under __Host- names
# (host-only and Path=/, as Django sets both cookies here: a tenant's cookies never reach
# another tenant's subdomain). Each can be set on its own. Off by default: `make run` is http.
HTTPS = env.bool("DJANGO_HTTPS", default=False)
# Origins whose pages may PUT upload parts straight into the documents bucket (its CORS rule,
# written by `manage.py storage_setup`; the browser reads each part's ETag). One `*` each, as S3
# allows: every tenant's subdomain over https, or over http (any port named) when HTTPS is off.
AWS_S3_CORS_ORIGINS = env.list(
    "AWS_S3_CORS_ORIGINS",
    default=[f"https://*.{METIS_BASE_DOMAIN}"]
    if HTTPS
    else [
        f"http://*.{METIS_BASE_DOMAIN}",
        f"http://*.{METIS_BASE_DOMAIN}:{env('PORT', default='8000')}",
    ],
)
# The header the proxy sets to say the client used https, e.g. HTTP_X_FORWARDED_PROTO. Only
# behind a proxy that always sets (or strips) it: anyone else could claim https with it.
_proxy_ssl_header = env("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header, "https") if _proxy_ssl_header else None
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=HTTPS)
# The platform's probes and Prometheus call these over plain http inside the network: a redirect
# to https would fail them. (SecurityMiddleware matches the path without its leading slash.)
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$", r"^metrics/?$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 24 * 60 * 60 * HTTPS)
# Tenants are subdomains of the base domain: HSTS covers them all.
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if SESSION_COOKIE_SECURE:
    # __Host-: the browser keeps them only if Secure, host-only (no Domain) and Path=/.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

# --- Document tiering and Glacier restore (issue 3, storage_setup/tiering) -------------------
# Age (days since the current version was stored) at which tiering moves a document to
# STANDARD_IA, then to GLACIER; the bucket's lifecycle rules use the same figures.
DOCUMENT_TIER_IA_AFTER_DAYS = env.int("DOCUMENT_TIER_IA_AFTER_DAYS", default=30)
DOCUMENT_TIER_GLACIER_AFTER_DAYS = env.int("DOCUMENT_TIER_GLACIER_AFTER_DAYS", default=90)
# Documents per batch (one transaction, one Celery task) of a tiering run.
DOCUMENT_TIER_BATCH_SIZE = env.int("DOCUMENT_TIER_BATCH_SIZE", default=200)
# A tiering claim older than this names a run that died between its S3 copy and the row's
# update; the sweep (every 5 minutes) then records the object's real class. Longer than a
# tiering task may live (CELERY_TASK_TIME_LIMIT, 6 minutes by default).
DOCUMENT_TIERING_STALE_MINUTES = env.int("DOCUMENT_TIERING_STALE_MINUTES", default=10)
# S3 copies a tiering run keeps in flight at once (a thread pool per run); the rows of each batch
# are then written together. 1 copies one object at a time.
DOCUMENT_TIERING_WORKERS = env.int("DOCUMENT_TIERING_WORKERS", default=8)
# Days a restored Glacier copy stays readable, and the retrieval tier (Expedited|Standard|Bulk).
DOCUMENT_RESTORE_DAYS = env.int("DOCUMENT_RESTORE_DAYS", default=7)
DOCUMENT_RESTORE_TIER = env("DOCUMENT_RESTORE_TIER", default="Standard")
# Lifecycle retention: days a noncurrent object version (replaced by a tiering copy, or hidden
# by a delete) is kept before the bucket expires it. Five years, the RBI's KYC record period.
DOCUMENT_NONCURRENT_VERSION_DAYS = env.int("DOCUMENT_NONCURRENT_VERSION_DAYS", default=1825)

# --- Analytics: ClickHouse events, dashboards ------------------------------------------------
# CLICKHOUSE_URL (http(s)://user:pass@host:8123/db) points at a real server; without it the
# embedded engine (chdb) keeps its files in CLICKHOUSE_CHDB_PATH, opened by one process at a time
# under a file lock (see analytics/clickhouse.py and docs/architecture.md, "Analytics").
CLICKHOUSE_URL = env("CLICKHOUSE_URL", default="")
CLICKHOUSE_CHDB_PATH = Path(env("CLICKHOUSE_CHDB_PATH", default=str(VAR_DIR / "clickhouse")))
CLICKHOUSE_DATABASE = env("CLICKHOUSE_DATABASE", default="metis")  # the URL's path wins if set
CLICKHOUSE_CLUSTER = env("CLICKHOUSE_CLUSTER", default="")  # set: ON CLUSTER DDL, Distributed
CLICKHOUSE_LOCK_TIMEOUT = env.float("CLICKHOUSE_LOCK_TIMEOUT", default=30)
ANALYTICS_OUTBOX_BATCH_SIZE = env.int("ANALYTICS_OUTBOX_BATCH_SIZE", default=2000)
ANALYTICS_OUTBOX_KEEP_DAYS = env.int("ANALYTICS_OUTBOX_KEEP_DAYS", default=7)
ANALYTICS_DASHBOARD_MAX_DAYS = env.int("ANALYTICS_DASHBOARD_MAX_DAYS", default=31)
ANALYTICS_DASHBOARD_MAX_ROWS = env.int("ANALYTICS_DASHBOARD_MAX_ROWS", default=50_000)
ANALYTICS_DASHBOARD_TIMEOUT = env.int("ANALYTICS_DASHBOARD_TIMEOUT", default=10)  # seconds
ANALYTICS_DASHBOARD_CACHE_SECONDS = 15 * 60

# --- DuckDB: Parquet exports, SQL workbench, usage reports (analytics/duck.py) -----------------
DUCKDB_THREADS = env.int("DUCKDB_THREADS", default=2)
DUCKDB_MEMORY_LIMIT = env("DUCKDB_MEMORY_LIMIT", default="512MB")
DUCKDB_WORKBENCH_TIMEOUT_SECONDS = env.float("DUCKDB_WORKBENCH_TIMEOUT_SECONDS", default=10)
DUCKDB_WORKBENCH_MAX_ROWS = env.int("DUCKDB_WORKBENCH_MAX_ROWS", default=1000)
DUCKDB_EXPORT_KEEP_RUNS = env.int("DUCKDB_EXPORT_KEEP_RUNS", default=7)
# Celery autodiscovery only finds `<app>.tasks`; the DuckDB jobs and exports live elsewhere.
CELERY_IMPORTS = ["analytics.duck_tasks", "privacy.exports.tasks"]

# --- Privacy: data exports (privacy/exports/) ---------------------------------------------------
# A download link to an export works this many seconds after the click that made it.
EXPORT_LINK_SECONDS = env.int("EXPORT_LINK_SECONDS", default=15 * 60)
# An export's file (every S3 version) is deleted this many days after it was built.
EXPORT_RETENTION_DAYS = env.int("EXPORT_RETENTION_DAYS", default=7)

# --- Backups (pgBackRest, logical dumps, drills) ------------------------------------------------
# The cluster to back up: defaults are the machine's Debian cluster (15/main). backup_configure
# prints the postgresql.conf settings it needs. Secrets come from the environment only.
BACKUP_STANZA = env("BACKUP_STANZA", default="metis")
BACKUP_PG_BIN_DIR = env("BACKUP_PG_BIN_DIR", default="/usr/lib/postgresql/15/bin")
BACKUP_PG_DATA_DIR = env("BACKUP_PG_DATA_DIR", default="/var/lib/postgresql/15/main")
BACKUP_PG_PORT = env.int("BACKUP_PG_PORT", default=5432)
BACKUP_PG_SOCKET_DIR = env("BACKUP_PG_SOCKET_DIR", default="/var/run/postgresql")
BACKUP_PG_OS_USER = env("BACKUP_PG_OS_USER", default="postgres")
BACKUP_PG_DATABASE = env("BACKUP_PG_DATABASE", default="metis")
# Repository: the object-storage bucket (or BACKUP_REPO_BUCKET) under BACKUP_REPO_PATH, or with
# BACKUP_REPO_TYPE=posix a directory (BACKUP_REPO_LOCAL_PATH; `make run` uses one, since
# pgBackRest's S3 driver needs an https endpoint and the embedded S3 server speaks http).
BACKUP_REPO_TYPE = env("BACKUP_REPO_TYPE", default="s3")
BACKUP_REPO_BUCKET = env("BACKUP_REPO_BUCKET", default="")
BACKUP_REPO_PATH = env("BACKUP_REPO_PATH", default="/system/backups")
BACKUP_REPO_S3_ENDPOINT_URL = env("BACKUP_REPO_S3_ENDPOINT_URL", default="")
BACKUP_REPO_S3_VERIFY_TLS = env.bool("BACKUP_REPO_S3_VERIFY_TLS", default=True)
BACKUP_REPO_LOCAL_PATH = env("BACKUP_REPO_LOCAL_PATH", default=str(VAR_DIR / "backups" / "repo"))
BACKUP_REPO_CIPHER_PASS = env("BACKUP_REPO_CIPHER_PASS", default="")
# A second region (pgBackRest's repo2): its own S3 endpoint (https), bucket, region, keys and
# cipher pass. Unset endpoint or bucket: one repository. WAL is pushed to both; full backups,
# the weekly archive copy and the monthly region-loss drill use it (docs/operations.md).
BACKUP_REPO2_S3_ENDPOINT_URL = env("BACKUP_REPO2_S3_ENDPOINT_URL", default="")
BACKUP_REPO2_S3_BUCKET = env("BACKUP_REPO2_S3_BUCKET", default="")
BACKUP_REPO2_S3_REGION = env("BACKUP_REPO2_S3_REGION", default="us-west-2")
BACKUP_REPO2_S3_KEY = env("BACKUP_REPO2_S3_KEY", default="")
BACKUP_REPO2_S3_SECRET = env("BACKUP_REPO2_S3_SECRET", default="")
BACKUP_REPO2_S3_VERIFY_TLS = env.bool("BACKUP_REPO2_S3_VERIFY_TLS", default=True)
BACKUP_REPO2_PATH = env("BACKUP_REPO2_PATH", default="")  # "": BACKUP_REPO_PATH
BACKUP_REPO2_CIPHER_PASS = env("BACKUP_REPO2_CIPHER_PASS", default="")
# Logical dumps and exports: AES-256-GCM with this key (urlsafe base64 of 32 bytes).
BACKUP_LOGICAL_KEY = env("BACKUP_LOGICAL_KEY", default="")
# Managed PostgreSQL (no file access): pg_dump/pg_restore connect here instead of the socket.
BACKUP_LOGICAL_DATABASE_URL = env("BACKUP_LOGICAL_DATABASE_URL", default="")
BACKUP_COMPRESS_TYPE = env("BACKUP_COMPRESS_TYPE", default="zst")
BACKUP_COMPRESS_LEVEL = env.int("BACKUP_COMPRESS_LEVEL", default=1)
BACKUP_PROCESS_MAX = env.int("BACKUP_PROCESS_MAX", default=2)
BACKUP_RESTORE_PROCESS_MAX = env.int("BACKUP_RESTORE_PROCESS_MAX", default=2)
BACKUP_BUFFER_SIZE = env("BACKUP_BUFFER_SIZE", default="")
BACKUP_S3_UPLOAD_CHUNK_SIZE = env("BACKUP_S3_UPLOAD_CHUNK_SIZE", default="")
BACKUP_REPO_BUNDLE = env.bool("BACKUP_REPO_BUNDLE", default=False)
BACKUP_PGBACKREST_CONFIG = env(
    "BACKUP_PGBACKREST_CONFIG", default=str(VAR_DIR / "backups" / "pgbackrest.conf")
)
BACKUP_WORK_DIR = env("BACKUP_WORK_DIR", default=str(VAR_DIR / "backups" / "work"))
# At most 60 s (the RPO target); 30 s leaves room for the push itself (bench/backup_rpo.py).
BACKUP_ARCHIVE_TIMEOUT_SECONDS = env.int("BACKUP_ARCHIVE_TIMEOUT_SECONDS", default=30)
BACKUP_RPO_TARGET_SECONDS = env.float("BACKUP_RPO_TARGET_SECONDS", default=60)
BACKUP_RTO_TARGET_SECONDS = env.float("BACKUP_RTO_TARGET_SECONDS", default=120)
BACKUP_REAPER_STALE_MINUTES = env.int("BACKUP_REAPER_STALE_MINUTES", default=10)
BACKUP_HISTORY_DAYS = env.int("BACKUP_HISTORY_DAYS", default=30)
# Job history deleted from the catalog is kept this long as JSON lines under system/history/.
BACKUP_HISTORY_ARCHIVE_DAYS = env.int("BACKUP_HISTORY_ARCHIVE_DAYS", default=90)
# Failover drills (manage.py failover_drill, backups/services/failover.py): the primary to stop
# and the standby to promote (data directories on this machine, pg_ctl as BACKUP_PG_OS_USER),
# and the application role's URL on the standby (by default the replica's).
FAILOVER_PRIMARY_DATA_DIR = env("FAILOVER_PRIMARY_DATA_DIR", default=BACKUP_PG_DATA_DIR)
FAILOVER_STANDBY_DATA_DIR = env("FAILOVER_STANDBY_DATA_DIR", default="")
FAILOVER_STANDBY_URL = env("FAILOVER_STANDBY_URL", default=DATABASE_REPLICA_URL)
# Patroni-managed clusters report about 13 s of write outage when a primary is lost.
FAILOVER_RTO_TARGET_SECONDS = env.float("FAILOVER_RTO_TARGET_SECONDS", default=10)
# true: the cluster is the embedded one `make run` owns, and `manage.py backup_local_setup` turns
# its archiving on and takes a first good backup (scripts/local_services.py writes it).
BACKUP_LOCAL_SETUP = env.bool("BACKUP_LOCAL_SETUP", default=False)

# --- Metrics: /metrics for Prometheus, samples in ClickHouse (monitoring/, docs/operations.md) ----
# METRICS_ENABLED=false leaves out the request timing middleware, the S3 and Celery hooks and
# /metrics (404). /metrics answers a request bearing `Authorization: Bearer <METRICS_TOKEN>`, or
# one whose client address (tenants/client_ip.py) is in METRICS_ALLOWED_NETWORKS; with neither
# set, nobody.
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])
# Counters and histograms are shared by every process of a machine (gunicorn workers, Celery's
# children) through prometheus_client's multiprocess files here. prometheus_client reads the
# variable when first imported, which is after settings: empty the directory at each deploy.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "prometheus"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
# Estimated storage cost: USD per GB-month (GB = 2**30 bytes, as AWS bills) by storage class;
# AWS us-east-1 list prices. Override some or all, e.g.
# STORAGE_PRICES_USD_PER_GB_MONTH=STANDARD=0.025,GLACIER=0.004
STORAGE_PRICES_USD_PER_GB_MONTH = {
    "STANDARD": 0.023,
    "STANDARD_IA": 0.0125,
    "GLACIER": 0.0036,
    **env.dict("STORAGE_PRICES_USD_PER_GB_MONTH", cast={"value": float}, default={}),
}
# Near the outside (only the health and request-log middleware, inserted later, wrap it): the
# request histogram times everything inside, the 503s of an exhausted pool or an outage too.
if METRICS_ENABLED:
    MIDDLEWARE.insert(0, "monitoring.middleware.RequestMetricsMiddleware")

# --- Alerts (monitoring/alerts/, docs/operations.md, "Alerts") ---------------------------------
# Beat evaluates every rule each minute (CELERY_BEAT_SCHEDULE below). An alert opens the first
# time its condition holds, and resolves only once it has been clear for
# ALERT_RESOLVE_AFTER_SECONDS: a condition that comes and goes keeps one alert, one mail.
ALERT_EMAILS = env.list("ALERT_EMAILS", default=[])
ALERT_WEBHOOK_URL = env("ALERT_WEBHOOK_URL", default="")  # Slack-compatible: {"text": ...}
ALERT_NOTIFY_TIMEOUT_SECONDS = env.float("ALERT_NOTIFY_TIMEOUT_SECONDS", default=10)
ALERT_RESOLVE_AFTER_SECONDS = env.int("ALERT_RESOLVE_AFTER_SECONDS", default=3 * 60)
ALERT_RULES_DISABLED = env.list("ALERT_RULES_DISABLED", default=[])
# The spec's three (data-storage.md, "Alerts"), then the operational ones.
ALERT_DB_CONNECTIONS_PERCENT = env.float("ALERT_DB_CONNECTIONS_PERCENT", default=80)
ALERT_DB_SLOW_QUERY_SECONDS = env.float("ALERT_DB_SLOW_QUERY_SECONDS", default=5)
ALERT_DB_DISK_PERCENT = env.float("ALERT_DB_DISK_PERCENT", default=85)
# The read replica's lag: by default the point where its reads go back to the primary.
ALERT_DB_REPLICA_LAG_SECONDS = env.float(
    "ALERT_DB_REPLICA_LAG_SECONDS", default=REPLICA_MAX_LAG_SECONDS
)
# The database's disk: with a capacity (bytes; managed PostgreSQL: its allocated storage),
# pg_database_size against it; otherwise the volume of ALERT_DB_DISK_PATH (default the
# cluster's data directory) by statvfs, when that path is on this machine.
ALERT_DB_DISK_CAPACITY_BYTES = env.int("ALERT_DB_DISK_CAPACITY_BYTES", default=0)
ALERT_DB_DISK_PATH = env("ALERT_DB_DISK_PATH", default=BACKUP_PG_DATA_DIR)
# Daily full backups (backups/migrations/0002): a day, plus the backup's own hours and grace.
ALERT_BACKUP_MAX_AGE_HOURS = env.float("ALERT_BACKUP_MAX_AGE_HOURS", default=36)
# Hourly archive checks: two missed in a row, or WAL that had not reached the archive for
# longer than the spec's 15-minute RPO when last checked.
ALERT_WAL_CHECK_MAX_AGE_MINUTES = env.float("ALERT_WAL_CHECK_MAX_AGE_MINUTES", default=150)
ALERT_WAL_ARCHIVE_MAX_AGE_SECONDS = env.float("ALERT_WAL_ARCHIVE_MAX_AGE_SECONDS", default=15 * 60)
# Monthly drills: a month and a few days.
ALERT_DRILL_MAX_AGE_DAYS = env.float("ALERT_DRILL_MAX_AGE_DAYS", default=35)
ALERT_OUTBOX_PENDING_MAX = env.int("ALERT_OUTBOX_PENDING_MAX", default=10_000)
ALERT_OUTBOX_OLDEST_SECONDS = env.float("ALERT_OUTBOX_OLDEST_SECONDS", default=10 * 60)
# S3 calls that failed since the previous evaluation (a minute), per operation; codes that are
# answers, not faults (an existence check of a missing key), are not counted.
ALERT_S3_ERRORS_PER_MINUTE = env.int("ALERT_S3_ERRORS_PER_MINUTE", default=5)
ALERT_S3_IGNORED_CODES = env.list("ALERT_S3_IGNORED_CODES", default=["NoSuchKey", "404"])
ALERT_CELERY_QUEUE_MAX = env.int("ALERT_CELERY_QUEUE_MAX", default=100)

# --- Audit trail (audit/; docs/architecture.md, "Audit trail") --------------------------------
# Reads of personal data are logged by URL name (audit/middleware.py), after the tenant context.
MIDDLEWARE.append("audit.middleware.AuditMiddleware")
# How long audit rows stay in PostgreSQL before a month is exported to Parquet and dropped: seven
# years, the longest record-keeping duty KYC files carry (AML record keeping is five years after
# the relationship ends, and a relationship may run on). Object storage keeps the exports.
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=7 * 365 + 2)
# The bucket each chain's daily anchor goes to: empty is the documents bucket. With S3 Object
# Lock on that bucket each anchor is locked (COMPLIANCE) for AUDIT_ANCHOR_LOCK_DAYS; without it,
# keep versioning on: audit_verify reads every version.
AUDIT_ANCHOR_BUCKET = env.str("AUDIT_ANCHOR_BUCKET", default="")
AUDIT_ANCHOR_LOCK_DAYS = env.int("AUDIT_ANCHOR_LOCK_DAYS", default=AUDIT_RETENTION_DAYS)

# --- Passwords, password resets and email ------------------------------------------------------
# Every form that sets a password (tenant reset and change pages, the staff admin's tenant-user
# and staff-user forms) runs all four of Django's validators, so all show Django's messages.
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        # auth.User's attributes for staff, TenantUser's `email` and `name` for tenant users; a
        # user lacking one is skipped.
        "OPTIONS": {"user_attributes": ("username", "first_name", "last_name", "email", "name")},
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        # 12, not Django's 8: these accounts reach borrowers' KYC documents, and OWASP ASVS 4
        # (V2.1.1) asks at least 12. NIST SP 800-63B rev. 4 asks 15 of a password used without
        # a second factor, as tenant users' still is: raise it if that standard binds.
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The first hasher hashes every new password; the others only verify older hashes, which are
# rehashed with the first at the user's next sign-in. Argon2 at OWASP's parameters (19 MiB,
# not Django's 100 MiB: 128 threads may hash at once; tenants/hashers.py says why).
PASSWORD_HASHERS = [
    "tenants.hashers.MetisArgon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
# Minutes a tenant password-reset link works (tenants/passwords.py); it works once.
TENANT_PASSWORD_RESET_MINUTES = env.int("TENANT_PASSWORD_RESET_MINUTES", default=30)
# smtp+tls://user:password@host:587, or consolemail:// (the default: `make run` prints each mail
# in its worker's output), see django-environ's EMAIL_URL schemes.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env(
    "DEFAULT_FROM_EMAIL", default=f"Metis Storage <no-reply@{METIS_BASE_DOMAIN}>"
)
# Seconds an SMTP connection may block: a mail task holds a row lock meanwhile
# (documents/restore_mail.py), and a hung server must end in a retry, not a stuck worker.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)
# A tenant's site, for links in mails sent outside a request ({subdomain}: the tenant's).
TENANT_SITE_URL = env("TENANT_SITE_URL", default=f"https://{{subdomain}}.{METIS_BASE_DOMAIN}")

# --- The rest ----------------------------------------------------------------------------------
LOGIN_URL = "tenants:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Beside the project's templates/: the scripts of third-party templates it overrides. Each app's
# own static files live in <app>/static/<app>/.
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Logs and errors (metis/logs.py, metis/sentry.py; docs/operations.md, "Logs") -------------
# One line per record on stderr: JSON (time, level, logger, message, request_id, tenant_id,
# user_id, user_type, task_id, task_name and the record's extras) or, for people, text.
# The web server, workers and beat all log this way (metis/celery.py stops Celery's own set-up).
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "metis.logs.ContextFilter"}},
    "formatters": {
        "json": {"()": "metis.logs.JsonFormatter"},
        "text": {"()": "metis.logs.TextFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["context"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Django's own handlers (console when DEBUG, mail to ADMINS) would print a second, plain
    # copy: its records go to the root handler like everyone's. Errors reach people by Sentry.
    "loggers": {
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
    },
}
# First: every line of a request, and its response, carry the request id.
MIDDLEWARE.insert(0, "metis.logs.RequestLogMiddleware")

# Errors to Sentry when SENTRY_DSN is set (needs `pip install sentry-sdk`, not in the locks).
SENTRY_DSN = env("SENTRY_DSN", default="")
if SENTRY_DSN:
    from metis import sentry

    sentry.sentry_init(
        dsn=SENTRY_DSN,
        environment=env("SENTRY_ENVIRONMENT", default="production"),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )

# --- Health and outages (metis/health/, metis/unavailable.py; docs/operations.md) ---------------
# /healthz and /readyz answer first, on any Host (a load balancer probes with the pod's address);
# before the request log too, which a probe every few seconds would only fill.
MIDDLEWARE.insert(0, "metis.health.middleware.HealthMiddleware")
# /readyz answers 503 when one of these fails; the others (broker, worker, beat) are reported.
HEALTH_READY_REQUIRED = env.list(
    "HEALTH_READY_REQUIRED", default=["postgres", "redis", "s3", "clickhouse"]
)
HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", default=2)  # seconds, all checks at once
# Beat sends metis.health.heartbeat this often; a worker runs it. /readyz calls either stale
# past HEALTH_HEARTBEAT_MAX_AGE. In the settings, not a data migration: beat writes it into its
# database schedule at every start, so no one can pause it by mistake.
HEALTH_HEARTBEAT_SECONDS = env.int("HEALTH_HEARTBEAT_SECONDS", default=60)
HEALTH_HEARTBEAT_MAX_AGE = env.int("HEALTH_HEARTBEAT_MAX_AGE", default=3 * HEALTH_HEARTBEAT_SECONDS)
CELERY_IMPORTS = [*CELERY_IMPORTS, "metis.health.tasks"]
CELERY_BEAT_SCHEDULE = {
    "metis.health.heartbeat": {
        "task": "metis.health.heartbeat",
        "schedule": HEALTH_HEARTBEAT_SECONDS,
        # A heartbeat that waited longer than its interval is worthless: never queue a backlog.
        "options": {"expires": HEALTH_HEARTBEAT_SECONDS},
    },
    # Here rather than in a data migration (as the metric samples are): alerting paused by
    # mistake would be silence nobody notices.
    "monitoring.evaluate_alerts": {
        "task": "monitoring.evaluate_alerts",
        "schedule": 60,
        "options": {"expires": 60},
    },
}
# Outages answer 503 with Retry-After (seconds) instead of a bare 500. Placed inside CSP (the
# page gets the policy) and outside everything that may reach a service (sessions, tenants).
MIDDLEWARE.insert(
    MIDDLEWARE.index("csp.middleware.CSPMiddleware") + 1,
    "metis.unavailable.ServiceUnavailableMiddleware",
)
UNAVAILABLE_RETRY_AFTER = env.int("UNAVAILABLE_RETRY_AFTER", default=30)
UNAVAILABLE_RETRY_AFTER_BUSY = env.int("UNAVAILABLE_RETRY_AFTER_BUSY", default=5)  # pool exhausted
if REDIS_URL:
    for _alias, _cache in CACHES.items():
        # A stopped or unreachable Redis answers within a second, never hangs a request.
        _cache["OPTIONS"] = {
            "SOCKET_CONNECT_TIMEOUT": 1,
            "SOCKET_TIMEOUT": 1,
            **_cache.get("OPTIONS", {}),
        }
        # The default cache and the sessions' cache degrade: an error is a logged miss, and
        # sessions come from PostgreSQL. The sign-in throttle does not (tenants/throttle.py).
        if _alias != "throttle":
            _cache["OPTIONS"]["IGNORE_EXCEPTIONS"] = True
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    DJANGO_REDIS_LOGGER = "metis.redis"
