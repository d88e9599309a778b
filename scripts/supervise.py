"""Run one command and start it again whenever it exits, with backoff: `make run`'s supervisor.

    python scripts/supervise.py -- .venv/bin/celery -A metis beat --loglevel=INFO

honcho (the Procfile) stops every process as soon as one exits, so a worker or beat that died
would take the web server with it. Wrapped in this, a dead worker or beat is started again
after 1 s, then 2, 4, ... up to 60 s while it keeps dying at once; a run that lasted a minute
resets the wait. Each exit and start is logged on stderr. SIGTERM or SIGINT is passed on to
the command, and this ends when it does. Production uses its process manager's restart policy
instead (docs/operations.md, "Process types").
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
STEADY_SECONDS = 60.0  # a run this long was healthy: the next failure waits BACKOFF_FIRST again


def _log(message: str) -> None:
    print(f"supervise: {message}", file=sys.stderr, flush=True)


def supervise(command: list[str]) -> int:
    child: subprocess.Popen | None = None
    stopping = False

    def stop(signum: int, _frame) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    backoff = BACKOFF_FIRST
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        _log(f"started pid {child.pid}: {' '.join(command)}")
        code = child.wait()
        if stopping:
            return code
        backoff = BACKOFF_FIRST if time.monotonic() - started >= STEADY_SECONDS else backoff
        _log(f"pid {child.pid} exited with {code}; starting it again in {backoff:.0f} s")
        deadline = time.monotonic() + backoff
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping:
            return code
        backoff = min(backoff * 2, BACKOFF_MAX)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    return supervise(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
