"""Under load, PostgreSQL, Redis and S3 stop and start: no bare 500, and Redis loss degrades.

Private servers only (the machine's PostgreSQL and Redis are never stopped): a PostgreSQL
cluster from initdb with the roles and migrations of production, a `redis-server` for the
caches and sessions, SeaweedFS for the bucket. The app is served over real HTTP from threads;
client threads sign in once, then hit tenant pages and the multipart upload API while the
test stops and starts one service at a time. Real `celery worker` and `celery beat` processes
run against the same servers throughout: after each outage both are still alive, beat still
sends and the worker still drains the outbox, with no restart by hand.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
from celery.utils.imports import symbol_by_name
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.test import Client, override_settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from metis.celery import app as celery_app
from metis.events import recorder
from metis.events.models import EventOutbox, EventOutboxBatch
from metis.health import checks
from tenants import db
from tests.conftest import host_of
from tests.documents.conftest import serve_app, upload
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory
from tests.support import scratch, services
from tests.support.celery_worker import wait_for
from tests.support.seaweedfs import SeaweedS3

THREADS = 4
OUTAGE_SECONDS = 3


@dataclass(frozen=True)
class Answer:
    phase: str
    method: str
    path: str
    status: int  # 0: no HTTP answer at all
    retry_after: str | None
    body: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory, django_db_blocker):
    work = tmp_path_factory.mktemp("outages")
    postgres = services.PrivatePostgres().create()
    redis_server = services.PrivateRedis().start()
    s3 = SeaweedS3(data_dir=work / "s3", keep_ports=True).start()
    bucket = f"outages-{uuid.uuid4().hex[:8]}"
    s3.client().create_bucket(Bucket=bucket)
    overrides = override_settings(
        REDIS_URL=redis_server.url,
        CACHES=redis_server.caches(throttle_prefix=f"outages-{uuid.uuid4().hex}"),
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=s3.endpoint_url,
        AWS_ACCESS_KEY_ID=s3.access_key,
        AWS_SECRET_ACCESS_KEY=s3.secret_key,
        AWS_S3_REGION_NAME="us-east-1",
        AWS_S3_ADDRESSING_STYLE="path",
        AWS_S3_SSE="AES256",
        STORAGES={**settings.STORAGES},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    )
    with django_db_blocker.unblock(), services.database_settings_kept():
        postgres.point_settings_at("metis_outages")
        pool = settings.DATABASES["default"]["OPTIONS"]["pool"]
        settings.DATABASES["default"]["OPTIONS"]["pool"] = {**pool, "max_size": 8, "timeout": 2}
        overrides.enable()
        try:
            scratch.scratch_database_create("metis_outages")
            tenant = TenantFactory(subdomain="acme", name="Acme Lending")
            TenantUserFactory(tenant=tenant, email="alice@acme.example")
            document = upload(tenant)
            connection.close()
            yield {
                "postgres": postgres,
                "redis": redis_server,
                "s3": s3,
                "bucket": bucket,
                "database": "metis_outages",
                "work": work,
                "tenant": tenant,
                "document": document,
            }
        finally:
            overrides.disable()
            scratch.close_all_connections()
            s3.stop()
            redis_server.stop()
            postgres.destroy()


@pytest.fixture(scope="module")
def celery(stack):
    """A worker and beat as the Procfile runs them; the drain and heartbeat every second."""
    environment = services.celery_environment(
        postgres=stack["postgres"],
        database=stack["database"],
        redis_server=stack["redis"],
        clickhouse_dir=stack["work"] / "clickhouse",
        s3=stack["s3"],
        bucket=stack["bucket"],
        HEALTH_HEARTBEAT_SECONDS="1",
    )
    subprocess.run(
        [sys.executable, "manage.py", "clickhouse_migrate"],
        cwd=services.ROOT,
        env=environment,
        check=True,
        capture_output=True,
    )
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.filter(task="analytics.drain_outbox").update(interval=every_second)
    connection.close()
    worker = services.celery_worker(environment, stack["work"] / "worker.log", name="outages")
    beat = services.celery_beat(environment, stack["work"] / "beat.log")
    worker.start(), beat.start()
    try:
        yield {"worker": worker, "beat": beat}
    finally:
        beat.stop()
        worker.stop()


def _event_recorded(tenant) -> EventOutbox:
    with db.tenant_context(tenant.pk):
        event = recorder.record_event(
            tenant=tenant,
            event_type="document.downloaded",
            data={"document_id": str(uuid.uuid4()), "document_type": "bank-statement"},
        )
    connection.close()
    return event


def _sent(tenant, event: EventOutbox) -> bool:
    """Delivered: neither waiting in the outbox nor in a batch on its way (none is rejected)."""
    with db.tenant_context(tenant.pk):
        waiting = (
            EventOutbox.objects.for_tenant(tenant.pk).filter(pk=event.pk).exists()
            or EventOutboxBatch.objects.for_tenant(tenant.pk)
            .filter(event_ids__contains=[event.pk])
            .exists()
        )
    connection.close()
    return not waiting


def _beat_and_worker_working(celery, tenant, timeout: float = 30) -> None:
    """Both processes alive; beat sends again, the worker runs it, and drains a new event."""
    started = time.time()
    event = _event_recorded(tenant)
    deadline = time.monotonic() + timeout
    while True:
        alive = {name: process.alive() for name, process in celery.items()}
        assert all(alive.values()), (alive, celery["beat"].output()[-3000:])
        beat_tick = caches["default"].get(checks.BEAT_KEY) or 0
        heartbeat = caches["default"].get(checks.WORKER_KEY) or 0
        if beat_tick > started and heartbeat > started and _sent(tenant, event):
            return
        assert time.monotonic() < deadline, (
            f"beat tick {beat_tick - started:.1f}, heartbeat {heartbeat - started:.1f} s "
            f"after the check began; event sent: {_sent(tenant, event)}\n"
            + celery["beat"].output()[-3000:]
            + celery["worker"].output()[-3000:]
        )
        time.sleep(0.2)


def _staff_edit_a_schedule() -> None:
    task = PeriodicTask.objects.get(task="analytics.purge_sent_outbox")
    task.description = f"edited {uuid.uuid4().hex[:6]}"
    task.save()  # as the admin saves it: beat sees the change and reads the schedule again
    connection.close()


@pytest.fixture
def pool_without_checks():
    """The pool hands out idle connections untried (DATABASE_POOL_CHECK=false)."""
    scratch.close_all_connections()
    connection.settings_dict["CONN_HEALTH_CHECKS"] = False
    try:
        yield
    finally:
        scratch.close_all_connections()
        connection.settings_dict["CONN_HEALTH_CHECKS"] = True


def test_beat_scheduler_reads_its_schedule_again_after_meeting_dead_connections(
    stack, pool_without_checks
):
    # The crash, step by step: after a quick restart the pool still holds connections
    # that died with it; a full read of the schedule (every 5 minutes, or after a staff edit)
    # first writes the entries beat ran (`sync`), which swallows the error but kept the dead
    # connection, then reads on it: "OperationalError: the connection is closed", beat exits.
    # The pool's check (on by default) hides this; the scheduler must not depend on it.
    scheduler_class = symbol_by_name(settings.CELERY_BEAT_SCHEDULER)
    scheduler = scheduler_class(app=celery_app)
    names = set(scheduler.schedule)
    drain = "Deliver analytics events to ClickHouse"
    assert drain in names
    connection.ensure_connection()
    stack["postgres"].stop()
    stack["postgres"].start()
    scheduler._dirty.add(drain)  # it ran since the last write
    scheduler._last_full_sync -= datetime.timedelta(minutes=10)  # a full read is due

    assert set(scheduler.schedule) == names  # the schedule it had, not an exception
    assert set(scheduler.schedule) == names  # and read again from the database
    assert not scheduler._initial_read


def test_beat_and_worker_keep_working_across_postgres_restarts(stack, celery):
    tenant = stack["tenant"]
    _beat_and_worker_working(celery, tenant, timeout=60)
    for _restart in range(2):
        # A quick restart: beat's pool keeps connections that died, and uses them afterwards.
        stack["postgres"].stop()
        stack["postgres"].start()
        scratch.close_all_connections()  # this process's pooled connections died too
        _staff_edit_a_schedule()  # beat re-reads its schedule, on connections that died
        _beat_and_worker_working(celery, tenant)


@pytest.mark.parametrize("name", ["beat", "worker"])
def test_the_supervisor_starts_a_killed_beat_or_worker_again(stack, celery, name):
    supervised = celery[name]
    started = supervised.celery_pids()
    first = started[-1]
    os.kill(first, signal.SIGKILL)
    wait_for(
        lambda: len(supervised.celery_pids()) > len(started), timeout=20, what=f"{name} restarted"
    )
    assert f"pid {first} exited with -9; starting it again in 1 s" in supervised.output()
    assert supervised.celery_pids()[-1] != first
    _beat_and_worker_working(celery, stack["tenant"])


def _signed_in_cookies(tenant) -> str:
    client = Client(HTTP_HOST=host_of(tenant))
    client.get("/login/")
    response = client.post("/login/", {"email": "alice@acme.example", "password": TEST_PASSWORD})
    assert response.status_code == 302
    connection.close()
    return "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())


class Load:
    """Client threads requesting pages and the upload API until stopped; every answer kept."""

    def __init__(self, port: int, host: str, cookies: str, document_id: str) -> None:
        self.port, self.host, self.cookies = port, host, cookies
        csrf = dict(part.split("=", 1) for part in cookies.split("; "))["csrftoken"]
        self.csrf = csrf
        self.document_id = document_id
        self.phase = "warm-up"
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(THREADS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _requests(self):
        document = f"/documents/{self.document_id}/"
        start_body = json.dumps(
            {
                "document_type": "bank-statement",
                "filename": "statement.pdf",
                "size": 10 * 1024 * 1024,
                "sha256": hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
                "content_type": "application/pdf",
            }
        )
        yield "GET", "/", None
        yield "GET", "/documents/", None
        yield "GET", document, None
        yield "GET", document + "download/", None
        yield "POST", "/documents/multipart/start/", start_body

    def _run(self, number: int) -> None:
        while not self._stop.is_set():
            for method, path, body in self._requests():
                self.request(method, path, body)

    def request(self, method: str, path: str, body: str | None = None) -> Answer:
        phase = self.phase
        headers = {"Host": self.host, "Cookie": self.cookies}
        if body is not None:
            headers |= {"Content-Type": "application/json", "X-CSRFToken": self.csrf}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            answer = Answer(
                phase,
                method,
                path,
                response.status,
                response.getheader("Retry-After"),
                response.read().decode(errors="replace"),
            )
        except OSError as exc:
            answer = Answer(phase, method, path, 0, None, repr(exc))
        finally:
            conn.close()
        with self._lock:
            self.answers.append(answer)
        return answer

    def wait_until_home_works(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.request("GET", "/").status != 200:
            assert time.monotonic() < deadline, "pages did not come back"
            time.sleep(0.2)

    def of(self, phase: str, path: str | None = None) -> list[Answer]:
        return [a for a in self.answers if a.phase == phase and (path is None or a.path == path)]


def test_stopping_postgres_redis_and_s3_under_load_never_gives_a_bare_500(stack, celery):
    tenant = stack["tenant"]
    pids = {name: process.celery_pids() for name, process in celery.items()}
    cookies = _signed_in_cookies(tenant)
    with (
        serve_app(threaded=True) as port,
        Load(port, host_of(tenant), cookies, str(stack["document"].pk)) as load,
    ):
        time.sleep(1)
        for service in ("postgres", "redis", "s3"):
            load.phase = f"{service} down"
            stack[service].stop()
            time.sleep(OUTAGE_SECONDS)
            load.phase = f"{service} back"
            stack[service].start()
            load.wait_until_home_works()
            time.sleep(0.5)
        load.phase = "after"
        time.sleep(1)
    answers = load.answers

    # Never a bare 500 (nor a dropped connection): an outage is a 503 with a message.
    assert [a for a in answers if a.status == 0 or (a.status >= 500 and a.status != 503)] == []
    unavailable = [a for a in answers if a.status == 503]
    assert all(a.retry_after and a.retry_after.isdigit() for a in unavailable)
    for answer in unavailable:
        if answer.path.startswith("/documents/multipart/"):
            assert json.loads(answer.body)["error"]
        else:
            assert "Temporarily unavailable" in answer.body and "try again" in answer.body

    # The outages were real: PostgreSQL's gave 503s, S3's gave the upload API 503s.
    assert any(a.status == 503 for a in load.of("postgres down"))
    starts = load.of("s3 down", "/documents/multipart/start/")
    assert starts and all(a.status == 503 for a in starts)
    # With Redis down, signed-in pages kept working: sessions from PostgreSQL.
    homes = load.of("redis down", "/")
    assert homes and all(a.status == 200 for a in homes)
    assert all("alice@acme.example" in a.body for a in homes)
    assert all(a.status in (200, 201, 302) for a in load.of("redis down"))
    # And afterwards everything answers as before.
    after = load.of("after")
    assert after and all(a.status in (200, 201, 302) for a in after)
    # Beat and the worker work afterwards without a restart by hand. Beat lives through all
    # three itself. The worker may not: when Redis goes while it holds unacknowledged messages,
    # kombu's channel close (restore_unacked) can raise AttributeError on a connection already
    # gone and the worker exits; the supervisor then starts it again, as it would in production
    # (systemd Restart=always). Either way the messages are still in Redis and are run.
    _beat_and_worker_working(celery, tenant)
    assert celery["beat"].celery_pids() == pids["beat"]
    assert celery["worker"].celery_pids()[: len(pids["worker"])] == pids["worker"]
    assert celery["worker"].alive() and celery["beat"].alive()
