"""Request latency through gunicorn with metrics and JSON logging on and off, alternated in one run.

Four gunicorn servers (metis/gunicorn.py) on the same scratch database (`bench_metrics`) and
private SeaweedFS, at LOG_LEVEL=INFO as in production (a line per request), logging to a file:

- baseline: METRICS_ENABLED=false, LOG_FORMAT=text;
- metrics: METRICS_ENABLED=true (the timing middleware, the S3 and Celery hooks, multiprocess
  counter files in a directory of its own, /metrics scraped once a round, untimed, as
  Prometheus would), LOG_FORMAT=text;
- json logs: METRICS_ENABLED=false, LOG_FORMAT=json (metis/logs.py);
- both: metrics on and JSON logs.

One signed-in client per server requests the document list, a document's page and the sign-in
page in turn, one request at a time; each round runs the servers in a new order (a rotation),
so drift on the machine falls on all alike. It prints the median and p95 of each and their
ratios against the baseline (of the pooled medians and p95s, and "paired": the median over
rounds of each round's median over the baseline's in that round, which drift on the machine
cannot tilt), and exits non-zero when a ratio of pooled medians is over `--max-ratio` (1.05):

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/metrics_overhead.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
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
from django.conf import settings  # noqa: E402

DATABASE = "bench_metrics"
TOKEN = "bench-metrics-token"
# name: (metrics on, log format); the first is the baseline.
VARIANTS = {
    "baseline": (False, "text"),
    "metrics": (True, "text"),
    "json logs": (False, "json"),
    "both": (True, "json"),
}


def timed_requests(session, documents: list[uuid.UUID], count: int) -> list[float]:
    """Make `count` requests over the three pages; return their latencies in seconds."""
    pages = common.browsing(documents)
    latencies = []
    for _ in range(count):
        path = next(pages)
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


def variant_environment(base: dict[str, str], work: Path, name: str) -> dict[str, str]:
    metrics, log_format = VARIANTS[name]
    environment = {
        **base,
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "8",
        "DATABASE_POOL_MAX_SIZE": "8",
        "DATABASE_POOL_MIN_SIZE": "2",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": log_format,
        "METRICS_ENABLED": str(metrics).lower(),
    }
    if metrics:
        slug = name.replace(" ", "-")
        environment["METRICS_TOKEN"] = TOKEN
        environment["PROMETHEUS_MULTIPROC_DIR"] = str(work / f"prometheus-{slug}")
    return environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=30, help="per server per round")
    parser.add_argument("--max-ratio", type=float, default=1.05)
    args = parser.parse_args()

    names = list(VARIANTS)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    # Each round's median over the baseline's of the same round: drift falls within a round.
    paired: dict[str, list[float]] = {name: [] for name in names}
    with (
        common.documents_stack(DATABASE, 20, prefix="bench_metrics") as stack,
        ExitStack() as servers,
    ):
        ports = {}
        for name in names:
            environment = variant_environment(stack.environment, stack.work, name)
            log = stack.work / f"gunicorn-{name.replace(' ', '-')}.log"
            ports[name] = servers.enter_context(
                common.gunicorn_server(environment, log, stack.host)
            )
        sessions = {
            name: common.TenantSession(port, stack.host, stack.email)
            for name, port in ports.items()
        }
        for name in names:  # warm all: pools filled, templates compiled
            timed_requests(sessions[name], stack.documents, args.requests)
        print(f"{args.rounds} rounds x {args.requests} requests per server…", flush=True)
        scraped = 0
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            medians = {}
            for name in names[shift:] + names[:shift]:
                taken = timed_requests(sessions[name], stack.documents, args.requests)
                latencies[name] += taken
                medians[name] = statistics.median(taken)
            for name in names:
                paired[name].append(medians[name] / medians["baseline"])
            scraped = scrape(ports["both"])
            scrape(ports["metrics"])
        logged = sum(
            (stack.work / f"gunicorn-{name.replace(' ', '-')}.log").stat().st_size for name in names
        )
    figures = {name: summary(latencies[name]) for name in names}
    base_median, base_p95 = figures["baseline"]
    worst = 0.0
    print(
        f"{'':12}{'median ms':>11}{'p95 ms':>9}{'median ratio':>14}{'p95 ratio':>11}"
        f"{'paired ratio':>14}"
    )
    for name, (median, p95) in figures.items():
        ratio = median / base_median
        worst = max(worst, ratio)
        print(
            f"{name:12}{median:11.2f}{p95:9.2f}{ratio:13.3f}x{p95 / base_p95:10.3f}x"
            f"{statistics.median(paired[name]):13.3f}x"
        )
    print("paired ratio: the median over rounds of each round's median / the baseline's")
    print(f"/metrics answer: {scraped} bytes; server logs: {logged} bytes in all")
    print(f"worst ratio of medians: {worst:.3f}x (target ≤ {args.max_ratio}x)")
    sys.exit(0 if worst <= args.max_ratio else 1)


if __name__ == "__main__":
    main()
