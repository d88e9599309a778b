"""The counters and histograms processes add to as they work: requests, S3 calls, task failures.

prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by settings before this
module is first imported) keeps each process's values in a memory-mapped file of its own; the
/metrics view and the sample task add up every process's files. Figures read from the database,
the broker and the catalog at scrape time are in monitoring/collectors.py instead.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram

REQUEST_SECONDS = Histogram(
    "metis_http_request_duration_seconds",
    "Time to answer a request, by resolved view name, method and status class.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
S3_REQUESTS = Counter(
    "metis_s3_requests",
    "S3 API calls made, by operation (after botocore's retries).",
    ["operation"],
)
S3_ERRORS = Counter(
    "metis_s3_errors",
    "S3 API calls that failed, by operation and error code (`connection`: no answer).",
    ["operation", "code"],
)
TASK_FAILURES = Counter(
    "metis_celery_task_failures", "Celery tasks that raised (after retries), by task.", ["task"]
)


def _operation(event_name: str) -> str:
    # "after-call.s3.GetObject" → "GetObject"
    return event_name.rsplit(".", 1)[-1]


def s3_call_counted(*, event_name: str, http_response: Any, parsed: Any, **_: Any) -> None:
    """Count one answered S3 call, and an error when the answer is one (botocore after-call)."""
    operation = _operation(event_name)
    S3_REQUESTS.labels(operation).inc()
    error = parsed.get("Error") if isinstance(parsed, dict) else None
    status = getattr(http_response, "status_code", 0)
    if error or status >= 400:
        code = (error or {}).get("Code") or str(status)
        S3_ERRORS.labels(operation, code).inc()


def s3_call_failed_counted(*, event_name: str, **_: Any) -> None:
    """Count an S3 call that got no answer: connection refused, timeout (after-call-error)."""
    operation = _operation(event_name)
    S3_REQUESTS.labels(operation).inc()
    S3_ERRORS.labels(operation, "connection").inc()


def task_failure_counted(sender: Any = None, **_: Any) -> None:
    """Count a failed Celery task (the task_failure signal, in the worker process)."""
    TASK_FAILURES.labels(getattr(sender, "name", None) or "unknown").inc()
