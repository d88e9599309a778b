"""`/healthz` and `/readyz` against real services that the tests stop and start.

One private server of each kind for the module: PostgreSQL (initdb in a temporary directory),
Redis (`redis-server` on a free port), S3 (SeaweedFS) and the embedded ClickHouse engine in a
temporary directory, which "stops" the way it really can: another process holds the engine.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from django.db import connections
from django.test import Client, override_settings

from analytics import clickhouse, schema
from metis.health import tasks
from tests.support import services
from tests.support.ports import free_port
from tests.support.seaweedfs import SeaweedS3

LB_PROBE_HOST = "10.1.2.3:8000"  # a pod address: in no ALLOWED_HOSTS, no tenant


@pytest.fixture(scope="module")
def stack(tmp_path_factory, django_db_blocker):
    """Private PostgreSQL, Redis, S3 and ClickHouse, with the settings pointing at them."""
    work = tmp_path_factory.mktemp("health")
    postgres = services.PrivatePostgres().create()
    redis_server = services.PrivateRedis().start()
    s3 = SeaweedS3(data_dir=work / "s3", keep_ports=True).start()
    bucket = f"health-{uuid.uuid4().hex[:8]}"
    s3.client().create_bucket(Bucket=bucket)
    overrides = override_settings(
        REDIS_URL=redis_server.url,
        CACHES=redis_server.caches(),
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=s3.endpoint_url,
        AWS_ACCESS_KEY_ID=s3.access_key,
        AWS_SECRET_ACCESS_KEY=s3.secret_key,
        AWS_S3_REGION_NAME="us-east-1",
        CLICKHOUSE_URL="",
        CLICKHOUSE_CHDB_PATH=work / "chdb" / "data",
        CLICKHOUSE_DATABASE="health",
        CLICKHOUSE_CLUSTER="",
    )
    with django_db_blocker.unblock(), services.database_settings_kept():
        # The readiness check needs only a server that answers: the superuser's own database.
        from tests.support import scratch

        scratch.close_all_connections()
        from django.conf import settings

        settings.DATABASES["default"].update(
            HOST="127.0.0.1", PORT=postgres.port, NAME="postgres", USER="postgres", PASSWORD=""
        )
        overrides.enable()
        try:
            schema.migrate()
            yield {"postgres": postgres, "redis": redis_server, "s3": s3}
        finally:
            overrides.disable()
            s3.stop()
            redis_server.stop()
            postgres.destroy()


def readyz(host: str = LB_PROBE_HOST):
    started = time.monotonic()
    response = Client().get("/readyz", HTTP_HOST=host)
    return response, time.monotonic() - started


def test_healthz_answers_any_host_without_the_database_or_a_redirect(settings):
    # No database fixture: pytest-django refuses any query this request would make.
    settings.SECURE_SSL_REDIRECT = True  # production: plain HTTP would be redirected
    response = Client().get("/healthz", HTTP_HOST=LB_PROBE_HOST)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_readyz_is_ok_when_every_service_answers(stack, settings):
    settings.SECURE_SSL_REDIRECT = True
    response, took = readyz()
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok" and body["failing"] == []
    for name in ("postgres", "redis", "s3", "clickhouse"):
        assert body["checks"][name] == {
            "ok": True,
            "reason": body["checks"][name]["reason"],
            "required": True,
        }
    assert set(body["checks"]) == {
        "postgres",
        "redis",
        "s3",
        "clickhouse",
        "broker",
        "worker",
        "beat",
    }
    assert took < 3


@pytest.mark.parametrize("service", ["postgres", "redis", "s3"])
def test_readyz_names_a_stopped_service_and_recovers_when_it_returns(stack, service):
    server = stack[service]
    server.stop()
    try:
        response, took = readyz()
        body = response.json()
        assert response.status_code == 503, body
        assert body["failing"] == [service]
        assert body["checks"][service]["ok"] is False
        assert "127.0.0.1" not in str(body) and "postgres://" not in str(body)  # no addresses
        assert took < 4  # the checks' deadline (2 s), not a service's own timeouts
    finally:
        server.start()
    deadline = time.monotonic() + 20
    while (response := readyz()[0]).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert response.status_code == 200, response.json()


def test_readyz_names_clickhouse_while_another_process_holds_the_engine(stack, settings):
    lock_path = clickhouse._lock_path(Path(settings.CLICKHOUSE_CHDB_PATH).resolve())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import fcntl, sys, time
                handle = open({str(lock_path)!r}, "a+")
                fcntl.flock(handle, fcntl.LOCK_EX)
                print("held", flush=True)
                time.sleep(120)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        response, took = readyz()
        body = response.json()
        assert response.status_code == 503, body
        assert body["failing"] == ["clickhouse"]
        assert took < 4
    finally:
        holder.kill()
        holder.wait()
    response, _ = readyz()
    assert response.status_code == 200, response.json()


def test_readyz_names_clickhouse_when_its_server_refuses(stack, settings):
    settings.CLICKHOUSE_URL = f"http://default:@127.0.0.1:{free_port()}/health"  # nothing there
    response, _ = readyz()
    assert response.status_code == 503
    assert response.json()["failing"] == ["clickhouse"]


def test_readyz_reports_the_worker_heartbeat_and_beat_tick(stack):
    before = readyz()[0].json()["checks"]
    assert before["worker"]["ok"] is False and before["beat"]["ok"] is False
    tasks.beat_ticked()
    tasks.heartbeat.apply()  # run as a worker runs it
    after = readyz()[0].json()["checks"]
    assert after["worker"]["ok"] is True and after["beat"]["ok"] is True
    assert after["worker"]["reason"].startswith("last heartbeat")


def test_readyz_holds_no_database_connection_after_answering(stack):
    readyz()
    pool = connections["default"].pool
    stats = pool.get_stats()
    assert stats.get("pool_size", 0) - stats.get("pool_available", 0) == 0
