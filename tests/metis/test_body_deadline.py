"""The request-body deadline: whole bodies reach the app, trickled ones get a 408 and never do.

The unit tests hand the middleware one end of a socket pair, as gunicorn hands it the client's
socket; the last test runs the real gunicorn with metis/gunicorn.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from metis import body_deadline
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def echo(environ, start_response):
    """Answer 200 with the body the app read (none without a Content-Length, as Django)."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["echo.called"] = True
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


# What gunicorn imports in the last test: a 1-second deadline, so the test stays short.
trickle_app = body_deadline.RequestBodyDeadline(echo, timeout=1, min_rate=500, max_bytes=10_000)


def middleware(*, timeout: float = 0.5, min_rate: float = 500, max_bytes: int = 10_000):
    return body_deadline.RequestBodyDeadline(
        echo, timeout=timeout, min_rate=min_rate, max_bytes=max_bytes
    )


def send_slowly(sock: socket.socket, pieces: list[bytes], pause: float) -> threading.Thread:
    def send():
        for piece in pieces:
            try:
                sock.sendall(piece)
            except OSError:
                return  # the server side is gone
            time.sleep(pause)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


def call(app, server_side: socket.socket, length: int, **extra) -> tuple[str, bytes, dict]:
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(length),
        "wsgi.input": server_side.makefile("rb"),
        "gunicorn.socket": server_side,
        **extra,
    }
    statuses = []
    body = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    return statuses[0], body, environ


@pytest.fixture
def sockets():
    server_side, client_side = socket.socketpair()
    yield server_side, client_side
    server_side.close()
    client_side.close()


def test_body_that_arrives_in_time_reaches_the_app_whole(sockets):
    server_side, client_side = sockets
    payload = os.urandom(5000)
    client_side.sendall(payload)

    status, body, _ = call(middleware(), server_side, len(payload))

    assert status == "200 OK"
    assert body == payload


def test_trickled_body_gets_408_before_the_app_runs(sockets):
    server_side, client_side = sockets
    # A byte every 0.1 s: each arrives well inside any per-read timeout, so only the deadline
    # (0.5 s, and 1/500 s more per byte) can stop it.
    send_slowly(client_side, [b"x"] * 100, pause=0.1)

    started = time.monotonic()
    status, body, environ = call(middleware(timeout=0.5), server_side, 4000)

    assert status == "408 Request Timeout"
    assert b"too slowly" in body
    assert "echo.called" not in environ
    assert time.monotonic() - started < 2


def test_steady_body_above_the_minimum_rate_may_outlast_the_timeout(sockets):
    server_side, client_side = sockets
    # 1 KiB every 0.1 s (10 KiB/s) against a minimum of 4 KiB/s: 1.2 s in all, past the 0.5 s.
    pieces = [os.urandom(1024) for _ in range(12)]
    send_slowly(client_side, pieces, pause=0.1)

    started = time.monotonic()
    status, body, _ = call(middleware(timeout=0.5, min_rate=4096), server_side, 12 * 1024)

    assert status == "200 OK"
    assert body == b"".join(pieces)
    assert time.monotonic() - started > 1


def test_without_the_servers_socket_the_body_is_left_to_the_app(sockets):
    server_side, client_side = sockets
    client_side.sendall(b"hello")
    stream = server_side.makefile("rb")
    environ = {"CONTENT_LENGTH": "5", "wsgi.input": stream}  # runserver: no gunicorn.socket

    body = b"".join(middleware()(environ, lambda status, headers: None))

    assert body == b"hello"
    assert environ["wsgi.input"] is stream


def test_body_larger_than_the_app_accepts_is_not_buffered(sockets):
    server_side, _ = sockets
    stream = server_side.makefile("rb")
    seen = {}

    def refuse_unread(environ, start_response):
        seen["input"] = environ["wsgi.input"]
        start_response("413 Content Too Large", [])
        return [b""]

    app = body_deadline.RequestBodyDeadline(
        refuse_unread, timeout=0.5, min_rate=500, max_bytes=1000
    )
    environ = {"CONTENT_LENGTH": "1001", "wsgi.input": stream, "gunicorn.socket": server_side}
    b"".join(app(environ, lambda status, headers: None))

    assert seen["input"] is stream


def test_turned_off_with_a_zero_timeout(sockets):
    server_side, client_side = sockets
    client_side.sendall(b"hello")
    stream = server_side.makefile("rb")

    _, body, environ = call(middleware(timeout=0), server_side, 5, **{"wsgi.input": stream})

    assert body == b"hello"
    assert environ["wsgi.input"] is stream


def read_response(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
        if b"\r\n\r\n" in received:
            head, _, rest = received.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(rest) >= length:
                break
    return received


@contextlib.contextmanager
def gunicorn(tmp_path: Path, *, threads: int):
    """Serve trickle_app with metis/gunicorn.py, one worker; yield the port once it listens."""
    port = free_port()
    environment = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": str(threads),
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-c",
            "python:metis.gunicorn",
            "tests.metis.test_body_deadline:trickle_app",
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "gunicorn.log").open("wb"),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_gunicorn_answers_a_trickling_client_408_and_serves_the_next(tmp_path):
    with gunicorn(tmp_path, threads=4) as port:
        head = b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 4000\r\n\r\n"

        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow.sendall(head)
        started = time.monotonic()
        send_slowly(slow, [b"x"] * 50, pause=0.2)
        answer = read_response(slow)
        elapsed = time.monotonic() - started
        slow.close()

        quick = socket.create_connection(("127.0.0.1", port), timeout=10)
        quick.sendall(head.replace(b"4000", b"5") + b"hello")
        echoed = read_response(quick)
        quick.close()

    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 0.9 < elapsed < 3
    assert echoed.startswith(b"HTTP/1.1 200 ") and echoed.endswith(b"hello")


def test_a_chunked_body_is_refused_411_unread_and_the_app_never_runs(sockets):
    server_side, _client_side = sockets
    app = middleware()
    environ = {
        "REQUEST_METHOD": "POST",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "HTTP_ACCEPT": "application/json",
        "wsgi.input": server_side.makefile("rb"),
        "gunicorn.socket": server_side,
    }
    seen = {}

    body = b"".join(app(environ, lambda status, headers: seen.update(status=status)))

    assert seen["status"] == "411 Length Required"
    assert json.loads(body) == {"error": body_deadline.CHUNKED_MESSAGE}
    assert "echo.called" not in environ
    assert server_side.recv(1) == b""  # the read side is shut: gunicorn will not drain it


def test_gunicorn_refuses_a_slow_chunked_client_at_once_and_closes_its_connection(tmp_path):
    # One thread: were it held draining the chunked body, the next client would wait for it.
    with gunicorn(tmp_path, threads=1) as port:
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow.sendall(
            b"POST /documents/upload/ HTTP/1.1\r\nHost: test\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n"
        )
        started = time.monotonic()
        send_slowly(slow, [b"1\r\nx\r\n"] * 100, pause=0.2)  # 20 s of chunks, if allowed
        answer = read_response(slow)
        answered = time.monotonic() - started
        slow.settimeout(5)
        closed = slow.recv(4096) == b""  # the server ends the connection, not the client
        ended = time.monotonic() - started

        quick = socket.create_connection(("127.0.0.1", port), timeout=10)
        quick.sendall(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello")
        echoed = read_response(quick)
        quick.close()
        slow.close()

    assert answer.startswith(b"HTTP/1.1 411 "), answer
    assert body_deadline.CHUNKED_MESSAGE.encode() in answer
    assert answered < 1
    assert closed and ended < 3
    assert echoed.startswith(b"HTTP/1.1 200 ") and echoed.endswith(b"hello")
