"""Ordinary clients' latency while slow clients trickle upload bodies, against a baseline.

The app runs as in production: gunicorn with metis/gunicorn.py (threaded workers), against a
scratch database (`bench_slow_clients`) and a private SeaweedFS, with one tenant, one user and
a few documents. Two phases in the same run:

- baseline: `--clients` ordinary clients (20), each signed in once, browse for `--seconds`:
  the document list, a document's page, the sign-in page, with `--think` seconds between pages;
- attack: the same clients, the same way, while `--slow-clients` (100) each send a real
  multipart upload (signed-in session, CSRF token, Content-Length of 4 KiB) one byte every 2-3 s
  on a raw socket, starting again on a new connection whenever the server cuts one off.

It prints p50/p95 per phase, the ratio of the p95s, the errors the ordinary clients saw and what
the slow clients were answered, and exits non-zero if an ordinary request failed or the p95
ratio is over `--max-ratio` (2.0). The server's figures come from the environment, so
`--pool-max-size`, `--body-timeout`, `--workers` and `--threads` try other settings:

    .venv/bin/python scripts/local_services.py test   # writes var/test.env
    METIS_ENV_FILE=var/test.env .venv/bin/python bench/slow_clients.py [--seconds 60]
    METIS_ENV_FILE=var/test.env .venv/bin/python bench/slow_clients.py --body-timeout 0
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import select
import socket
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

import _documents_app as common  # noqa: E402

from tests.support import pdfs  # noqa: E402

DATABASE = "bench_slow_clients"
DOCUMENTS = 20
SLOW_BODY_BYTES = 4096
SLOW_PAUSE = (2.0, 3.0)  # seconds between two bytes of a slow body
RAMP_SECONDS = 5  # slow clients connect before the attack phase is measured
REQUEST_TIMEOUT = 60  # an ordinary request slower than this counts as an error
# What the server log says when the database held a request up: Django's 500 for a request that
# waited DATABASE_POOL_TIMEOUT for a pooled connection, and PostgreSQL refusing a new connection
# (other processes on the server hold its max_connections).
SERVER_LOG_SIGNS = {
    "pool timeouts": "OperationalError: couldn't get a connection",
    "connections PostgreSQL refused": "too many clients already",
}


# --- Setting up --------------------------------------------------------------------------------


def server_environment(base: dict[str, str], args: argparse.Namespace) -> dict[str, str]:
    """The app's environment, with the flags that override the server's figures."""
    environment = dict(base)
    if args.pool_max_size is not None:
        environment["DATABASE_POOL_MAX_SIZE"] = str(args.pool_max_size)
        environment["DATABASE_POOL_MIN_SIZE"] = str(min(5, args.pool_max_size))
    for flag, variable in [
        ("body_timeout", "REQUEST_BODY_TIMEOUT"),
        ("workers", "GUNICORN_WORKERS"),
        ("threads", "GUNICORN_THREADS"),
    ]:
        if getattr(args, flag) is not None:
            environment[variable] = str(getattr(args, flag))
    return environment


# --- Ordinary clients --------------------------------------------------------------------------


@dataclass
class Phase:
    """What the ordinary clients saw in one phase (list appends are atomic under the GIL)."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)

    def ms(self) -> tuple[float, float]:
        """Return the p50 and p95 of every request, failed ones included, in milliseconds."""
        p95 = statistics.quantiles(self.latencies, n=20, method="inclusive")[18]
        return statistics.median(self.latencies) * 1000, p95 * 1000


def browse(session, documents: list[uuid.UUID], until: float, think: float, phase: Phase):
    """Loop over the list, a document's page and the sign-in page until `until`."""
    rng = random.Random()
    pages = common.browsing(documents)
    while time.monotonic() < until:
        path = next(pages)
        start = time.perf_counter()
        try:
            status, _, _ = session.request("GET", path)
        except OSError as exc:  # a timeout or a refused connection
            status = type(exc).__name__
        phase.latencies.append(time.perf_counter() - start)
        if status != 200:
            phase.errors[status] += 1
        time.sleep(rng.uniform(0, 2 * think))


def run_clients(sessions, documents, seconds: float, think: float) -> Phase:
    phase = Phase()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=browse, args=(session, documents, until, think, phase))
        for session in sessions
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return phase


# --- Slow clients ------------------------------------------------------------------------------


def slow_upload_request(session, host: str) -> tuple[bytes, bytes]:
    """Return the head and the body of a real upload of a 4 KiB PDF from `session`."""
    boundary = uuid.uuid4().hex
    token = session.cookies["csrftoken"].value
    pdf = pdfs.pdf_around(b"%" + os.urandom(SLOW_BODY_BYTES - 900).replace(b"\n", b" "))
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n'
        f"{token}\r\n--{boundary}\r\n"
        f'Content-Disposition: form-data; name="document_type"\r\n\r\nbank-statement\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="slow.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    body += pdf + f"\r\n--{boundary}--\r\n".encode()
    cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in session.cookies.items())
    head = (
        f"POST /documents/upload/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookies}\r\n"
        f"X-CSRFToken: {token}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


def trickle(port: int, request: tuple[bytes, bytes], stop: threading.Event, answers: Counter):
    """Send the upload a byte every 2-3 s; on a new connection each time the server ends one."""
    rng = random.Random()
    head, body = request
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(head)
        except OSError as exc:
            answers[f"connect: {type(exc).__name__}"] += 1
            stop.wait(1)
            continue
        with sock:
            answers["uploads started"] += 1
            for byte in body:
                if select.select([sock], [], [], rng.uniform(*SLOW_PAUSE))[0]:
                    answers[status_of(sock)] += 1  # the server answered or hung up
                    break
                if stop.is_set():
                    break
                try:
                    sock.sendall(bytes([byte]))
                except OSError as exc:
                    answers[type(exc).__name__] += 1
                    break


def status_of(sock: socket.socket) -> str:
    try:
        line = sock.recv(64).split(b"\r\n")[0].decode(errors="replace")
    except OSError as exc:
        return type(exc).__name__
    return line.removeprefix("HTTP/1.1 ") or "closed"


@contextlib.contextmanager
def slow_clients(port: int, request, count: int):
    """Run `count` slow clients until the block ends; yield what the server answered them."""
    answers: Counter = Counter()
    stop = threading.Event()
    threads = [
        threading.Thread(target=trickle, args=(port, request, stop, answers), daemon=True)
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    try:
        yield answers
    finally:
        stop.set()
        for thread in threads:
            thread.join()


# --- Main --------------------------------------------------------------------------------------


def report(args, baseline: Phase, attack: Phase, answers: Counter, server_log: str) -> bool:
    """Print the figures; return whether the ordinary clients came through unharmed."""
    print(
        f"\nSlow clients: {args.clients} ordinary clients browsing {args.seconds:.0f} s per phase; "
        f"{args.slow_clients} slow clients trickling {SLOW_BODY_BYTES // 1024} KiB uploads "
        f"(a byte every {SLOW_PAUSE[0]:.0f}-{SLOW_PAUSE[1]:.0f} s)"
    )
    print(f"  {'':12}{'requests':>10}{'errors':>8}{'p50 ms':>10}{'p95 ms':>10}")
    for name, phase in (("baseline", baseline), ("attack", attack)):
        p50, p95 = phase.ms()
        errors = sum(phase.errors.values())
        print(f"  {name:12}{len(phase.latencies):>10}{errors:>8}{p50:10.1f}{p95:10.1f}")
    ratio = attack.ms()[1] / baseline.ms()[1]
    print(f"  p95 attack / baseline: {ratio:.2f}x (limit {args.max_ratio:.2f}x)")
    for name, phase in (("baseline", baseline), ("attack", attack)):
        if phase.errors:
            print(f"  errors during {name}: {dict(phase.errors)}")
    print(f"  slow clients: {dict(answers)}")
    signs = {name: server_log.count(line) for name, line in SERVER_LOG_SIGNS.items()}
    print("  server log: " + ", ".join(f"{count} {name}" for name, count in signs.items()))
    failures = []
    if baseline.errors or attack.errors:
        failures.append("ordinary clients saw errors")
    if ratio > args.max_ratio:
        failures.append(f"p95 ratio {ratio:.2f}x over {args.max_ratio:.2f}x")
    print("FAIL: " + "; ".join(failures) if failures else "PASS")
    return not failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    parser.add_argument("--clients", type=int, default=20, help="ordinary clients")
    parser.add_argument("--slow-clients", type=int, default=100)
    parser.add_argument("--think", type=float, default=0.2, help="mean pause between pages, s")
    parser.add_argument("--max-ratio", type=float, default=2.0, help="p95 attack / baseline")
    parser.add_argument("--pool-max-size", type=int, help="DATABASE_POOL_MAX_SIZE per worker")
    parser.add_argument("--body-timeout", type=float, help="REQUEST_BODY_TIMEOUT (0: off)")
    parser.add_argument("--workers", type=int, help="GUNICORN_WORKERS")
    parser.add_argument("--threads", type=int, help="GUNICORN_THREADS")
    parser.add_argument("--server-log", type=Path, help="keep gunicorn's output in this file")
    args = parser.parse_args()

    with common.documents_stack(DATABASE, DOCUMENTS, prefix="bench_slow") as stack:
        host, email, documents = stack.host, stack.email, stack.documents
        environment = server_environment(stack.environment, args)
        log_path = args.server_log or stack.work / "gunicorn.log"
        with common.gunicorn_server(environment, log_path, host) as port:
            print(f"gunicorn on 127.0.0.1:{port}; signing in {args.clients + 1} sessions…")
            common.TenantSession.timeout = REQUEST_TIMEOUT
            sessions = [common.TenantSession(port, host, email) for _ in range(args.clients)]
            request = slow_upload_request(common.TenantSession(port, host, email), host)

            print(f"baseline: {args.seconds:.0f} s…", flush=True)
            baseline = run_clients(sessions, documents, args.seconds, args.think)
            print(
                f"attack: {args.slow_clients} slow clients, {RAMP_SECONDS} s to connect, "
                f"then {args.seconds:.0f} s…",
                flush=True,
            )
            # The slow clients go on until the last ordinary request has ended, so a request
            # queued behind them waits as long as it would in a real attack.
            with slow_clients(port, request, args.slow_clients) as answers:
                time.sleep(RAMP_SECONDS)
                attack = run_clients(sessions, documents, args.seconds, args.think)
        passed = report(args, baseline, attack, answers, log_path.read_text(errors="replace"))
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
