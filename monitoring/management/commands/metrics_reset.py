"""Empty PROMETHEUS_MULTIPROC_DIR before the processes that count into it start.

prometheus_client's multiprocess mode sums every file in the directory, those of processes long
gone too: files left by a previous run would carry its counters into the new one. Run this with
every process that writes there stopped (`make run` does, just before honcho starts them).
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from monitoring import multiprocess


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def handle(self, *args, **options) -> None:
        removed = multiprocess.directory_reset()
        self.stdout.write(f"metrics: emptied {settings.PROMETHEUS_MULTIPROC_DIR} ({removed} files)")
