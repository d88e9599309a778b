"""gunicorn settings for serving Metis: `gunicorn -c python:metis.gunicorn`.

Every figure comes from the environment (GUNICORN_*, documented in .env.example), with defaults
sized for slow clients on a small machine.
"""

import environ

env = environ.Env()

wsgi_app = "metis.wsgi:application"
bind = env("GUNICORN_BIND", default=f"127.0.0.1:{env('PORT', default='8000')}")

# Threads, not processes: a client on a slow link keeps a thread waiting on its socket for as
# long as it sends, and a waiting thread costs a stack, not a database connection. The database
# is bounded elsewhere: each worker process has its own psycopg pool (DATABASE_POOL_MAX_SIZE, 25)
# and PostgreSQL allows 100 connections, so workers stay few (2 x 25 = 50) and threads many:
# 2 x 64 = 128 requests in flight, room for 100 slow uploads and 20 ordinary clients (the load
# bench/slow_clients.py puts on it) even when the kernel hands one worker a few more than half.
# Bodies are read before Django runs, against a deadline (metis/body_deadline.py), so a slow
# upload holds only its thread, and only for so long.
worker_class = "gthread"
workers = env.int("GUNICORN_WORKERS", default=2)
threads = env.int("GUNICORN_THREADS", default=64)

# Seconds a worker may stay silent before the arbiter restarts it. A gthread worker's main loop
# reports in whatever its threads are doing, so this catches a stuck process, not a slow request.
timeout = env.int("GUNICORN_TIMEOUT", default=30)
graceful_timeout = env.int("GUNICORN_GRACEFUL_TIMEOUT", default=30)
# Seconds an idle kept-alive connection waits for its next request, outside any thread.
keepalive = env.int("GUNICORN_KEEPALIVE", default=5)

# Errors to stderr; the access log is off unless asked for ("-" is stderr too).
accesslog = env("GUNICORN_ACCESS_LOG", default=None)


def child_exit(server, worker) -> None:
    # The arbiter outlives its workers: it tells prometheus_client that one is gone, so the
    # live gauges of a dead worker stop being summed (monitoring/multiprocess.py).
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
    from monitoring import multiprocess

    multiprocess.process_dead_mark(worker.pid)
