"""The event types backups record (registered with metis.events): one tenant's export run."""

from metis.events import recorder

RUN_SUCCEEDED = recorder.register("backup.run_succeeded", data=("backup_id", "kind", "size_bytes"))
RUN_FAILED = recorder.register("backup.run_failed", data=("backup_id", "kind", "error"))
