"""Request latency through gunicorn with metrics on against metrics off, alternated in one run.

Two gunicorn servers (metis/gunicorn.py) on the same scratch database (`bench_metrics`) and
private SeaweedFS: one with METRICS_ENABLED=true (the timing middleware, the S3 and Celery
hooks, multiprocess counter files in a directory of its own, and /metrics scraped once a round,
untimed, as Prometheus would), one with METRICS_ENABLED=false. One signed-in client per server
requests the document list, a document's page and the sign-in page in turn, one request at a
time; rounds alternate which server goes first, so drift on the machine falls on both alike.
It prints the median and p95 of each and the ratio of the medians, and exits non-zero when the
ratio is over `--max-ratio` (1.05):

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/metrics_overhead.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

import _documents_app as common  # noqa: E402
import slow_clients  # noqa: E402
from django.conf import settings  # noqa: E402
from django.test import override_settings  # noqa: E402

from tests.support import scratch  # noqa: E402
from tests.support.seaweedfs import SeaweedS3  # noqa: E402

DATABASE = "bench_metrics"
TOKEN = "bench-metrics-token"


def timed_requests(session, documents: list[uuid.UUID], count: int) -> list[float]:
    """Make `count` requests over the three pages; return their latencies in seconds."""
    rng = random.Random()
    pages = itertools.cycle(["/documents/", "a document", "/login/"])
    latencies = []
    for _ in range(count):
        path = next(pages)
        if path == "a document":
            path = f"/documents/{rng.choice(documents)}/"
        start = time.perf_counter()
        status, _, _ = session.request("GET", path)
        latencies.append(time.perf_counter() - start)
        assert status == 200, (path, status)
    return latencies


def scrape(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Host": settings.METIS_BASE_DOMAIN, "Authorization": f"Bearer {TOKEN}"}
    connection.request("GET", "/metrics", headers=headers)
    response = connection.getresponse()
    size = len(response.read())
    assert response.status == 200, response.status
    return size


def summary(latencies: list[float]) -> tuple[float, float]:
    return (
        statistics.median(latencies) * 1000,
        statistics.quantiles(latencies, n=20)[18] * 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=30, help="per server per round")
    parser.add_argument("--max-ratio", type=float, default=1.05)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="metis-bench-metrics-"))
    server = SeaweedS3(data_dir=work / "seaweed").start()
    try:
        server.client().create_bucket(Bucket=common.BUCKET)
        scratch.scratch_database_create(DATABASE)
        tenant, email = common.seed_tenant()
        with override_settings(
            AWS_STORAGE_BUCKET_NAME=common.BUCKET,
            AWS_S3_ENDPOINT_URL=server.endpoint_url,
            AWS_ACCESS_KEY_ID=server.access_key,
            AWS_SECRET_ACCESS_KEY=server.secret_key,
        ):
            documents = slow_clients.seed_documents(tenant, email, 20)
        scratch.close_all_connections()
        host = f"{tenant.subdomain}.{settings.METIS_BASE_DOMAIN}"
        base = {
            **common.app_environment(server, DATABASE),
            "CACHE_KEY_PREFIX": "bench_metrics",
            "GUNICORN_WORKERS": "2",
            "GUNICORN_THREADS": "8",
            "DATABASE_POOL_MAX_SIZE": "8",
            "DATABASE_POOL_MIN_SIZE": "2",
        }
        variants = {
            "on": {
                **base,
                "METRICS_ENABLED": "true",
                "METRICS_TOKEN": TOKEN,
                "PROMETHEUS_MULTIPROC_DIR": str(work / "prometheus"),
            },
            "off": {**base, "METRICS_ENABLED": "false"},
        }
        latencies: dict[str, list[float]] = {"on": [], "off": []}
        with ExitStack() as servers:
            ports = {
                name: servers.enter_context(
                    slow_clients.gunicorn_server(environment, work / f"gunicorn-{name}.log", host)
                )
                for name, environment in variants.items()
            }
            sessions = {
                name: common.TenantSession(port, host, email) for name, port in ports.items()
            }
            for name in ports:  # warm both: pools filled, templates compiled
                timed_requests(sessions[name], documents, args.requests)
            print(f"{args.rounds} rounds x {args.requests} requests per server…", flush=True)
            scraped = 0
            for round_number in range(args.rounds):
                order = ["on", "off"] if round_number % 2 == 0 else ["off", "on"]
                for name in order:
                    latencies[name] += timed_requests(sessions[name], documents, args.requests)
                scraped = scrape(ports["on"])
        (on_median, on_p95), (off_median, off_p95) = (
            summary(latencies["on"]),
            summary(latencies["off"]),
        )
        ratio = on_median / off_median
        print(f"metrics off: median {off_median:.2f} ms, p95 {off_p95:.2f} ms")
        print(f"metrics on:  median {on_median:.2f} ms, p95 {on_p95:.2f} ms")
        print(f"/metrics answer: {scraped} bytes")
        print(f"ratio of medians (on/off): {ratio:.3f}x (target ≤ {args.max_ratio}x)")
        print(f"ratio of p95s (on/off):    {on_p95 / off_p95:.3f}x")
    finally:
        scratch.scratch_database_drop(DATABASE)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ratio <= args.max_ratio else 1)


if __name__ == "__main__":
    main()
