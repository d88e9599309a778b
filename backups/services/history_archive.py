"""Job history past its days in the database: archived to object storage, then deleted there too.

The spec keeps workflow history as Temporal would (docs/architecture.md, "Workflow storage"):
executions 30 days where they are searched (the catalog tables, BACKUP_HISTORY_DAYS), history
archived for 90 days (BACKUP_HISTORY_ARCHIVE_DAYS). So before `runs.history_cleanup` deletes a
row, the row goes, as one JSON line, into `system/history/<table>/<date>-<id>.jsonl.gz` in the
backups bucket; the daily cleanup then deletes the archives older than the archive period.
Archive first, delete second: if the store is down the rows stay and the next run tries again.
"""

from __future__ import annotations

import datetime
import gzip
import json
import re
import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet

from metis.objectstore import store

ARCHIVE_PREFIX = "system/history/"
_DATED_NAME = re.compile(r"/(\d{4}-\d{2}-\d{2})-[0-9a-f]+\.jsonl\.gz$")


def history_archive(*, table: str, rows: QuerySet, now: datetime.datetime) -> str | None:
    """Write `rows` (all fields) to one archive object; return its key, or None for no rows."""
    lines = [json.dumps(row, cls=DjangoJSONEncoder, sort_keys=True) for row in rows.values()]
    if not lines:
        return None
    key = f"{ARCHIVE_PREFIX}{table}/{now:%Y-%m-%d}-{uuid.uuid4().hex[:12]}.jsonl.gz"
    body = gzip.compress(("\n".join(lines) + "\n").encode())
    store.backups_store().put_bytes(key=key, data=body, content_type="application/gzip")
    return key


def history_archive_prune(*, now: datetime.datetime) -> int:
    """Delete the archives older than BACKUP_HISTORY_ARCHIVE_DAYS; return how many."""
    cutoff = (now - datetime.timedelta(days=settings.BACKUP_HISTORY_ARCHIVE_DAYS)).date()
    backups = store.backups_store()
    pruned = 0
    for key in backups.keys(ARCHIVE_PREFIX):
        dated = _DATED_NAME.search(key)
        if dated and datetime.date.fromisoformat(dated.group(1)) < cutoff:
            backups.purge(key)
            pruned += 1
    return pruned


def history_archive_read(key: str) -> list[dict]:
    """Return the rows of one archive (for an auditor, and the tests)."""
    data = store.backups_store().read_bytes(key)
    if data is None:
        return []
    return [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line]
