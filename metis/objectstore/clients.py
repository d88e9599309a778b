"""The only place S3 clients are built: one cached, thread-safe boto3 client per endpoint.

boto3 clients are thread-safe and expensive to create (they load the service model), so each
endpoint (URL, region, credentials, addressing style) gets one for the life of the process.
A settings change (a test pointing at another server) is a different endpoint, hence a new
client; nothing has to be reset.

botocore's own timeouts are a minute to connect and a minute per read, each retried: a server
that is down would hold a request for minutes before its 503. The endpoint carries shorter ones
(AWS_S3_CONNECT_TIMEOUT, AWS_S3_READ_TIMEOUT, AWS_S3_MAX_ATTEMPTS, AWS_S3_RETRY_MODE; see
docs/operations.md). The read timeout bounds each socket read or write, not a whole transfer:
a large upload goes on for as long as every part keeps moving.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from botocore.config import Config


@dataclass(frozen=True)
class Endpoint:
    url: str  # "" means AWS itself
    region: str
    access_key: str
    secret_key: str
    addressing_style: Literal["auto", "virtual", "path"] = "path"
    connect_timeout: float = 3  # seconds to open a connection
    read_timeout: float = 30  # seconds one socket read (or write) may wait
    max_attempts: int = 3  # the first try included
    retry_mode: Literal["legacy", "standard", "adaptive"] = "standard"
    # False only for a test server's self-signed certificate (the backups' second region).
    verify_tls: bool = True


_clients: dict[Endpoint, Any] = {}
_lock = threading.Lock()


# Called before each use of a client, in the caller's thread: the wiring registers one that
# gives the thread's database connection back, so no one holds it while S3 answers.
_before_use: list[Callable[[], None]] = []


def before_each_use(hook: Callable[[], None]) -> None:
    """Run `hook` (once registered) whenever a caller is about to talk to S3."""
    if hook not in _before_use:
        _before_use.append(hook)


# botocore event handlers put on every client, built or to be built ("after-call.s3", ...): the
# metrics count requests and errors through them without the room importing any of ours.
_event_handlers: list[tuple[str, Callable[..., Any]]] = []


def on_client_event(event: str, handler: Callable[..., Any]) -> None:
    """Register `handler` for botocore's `event` on every S3 client (once registered)."""
    with _lock:
        if (event, handler) in _event_handlers:
            return
        _event_handlers.append((event, handler))
        for client in _clients.values():
            client.meta.events.register(event, handler)


def client_for(endpoint: Endpoint) -> Any:
    """Return the process's boto3 S3 client for `endpoint`, creating it once."""
    for hook in _before_use:
        hook()
    client = _clients.get(endpoint)
    if client is not None:
        return client
    with _lock:
        client = _clients.get(endpoint)
        if client is None:
            client = boto3.client(
                "s3",
                endpoint_url=endpoint.url or None,
                region_name=endpoint.region,
                aws_access_key_id=endpoint.access_key or None,
                aws_secret_access_key=endpoint.secret_key or None,
                verify=None if endpoint.verify_tls else False,
                config=Config(
                    s3={"addressing_style": endpoint.addressing_style},
                    signature_version="s3v4",
                    # Django's pool serves 25 threads; let each reach S3 without queueing.
                    max_pool_connections=32,
                    connect_timeout=endpoint.connect_timeout,
                    read_timeout=endpoint.read_timeout,
                    retries={
                        "mode": endpoint.retry_mode,
                        "total_max_attempts": endpoint.max_attempts,
                    },
                ),
            )
            for event, handler in _event_handlers:
                client.meta.events.register(event, handler)
            _clients[endpoint] = client
    return client
