"""Create and configure the documents bucket; print what was applied and what was refused."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from documents import bucket, storage


class Command(BaseCommand):
    help = (
        "Create the documents bucket if missing and apply versioning, default encryption, the "
        "bucket policy and the lifecycle rules. Safe to run again: it writes only what differs."
    )

    def handle(self, *args, **options) -> None:
        if not storage.is_s3():
            root = settings.OBJECT_STORAGE_LOCAL_ROOT
            existed = root.is_dir()
            root.mkdir(parents=True, exist_ok=True)
            self.stdout.write(
                f"local files under {root} ({'already there' if existed else 'created'}): "
                "no bucket, versioning, encryption or lifecycle to set up (set "
                "AWS_STORAGE_BUCKET_NAME to use S3)"
            )
            return
        name = settings.AWS_STORAGE_BUCKET_NAME
        self.stdout.write(f"bucket {name} at {settings.AWS_S3_ENDPOINT_URL or 'AWS'}")
        styles = {
            bucket.APPLIED: self.style.SUCCESS,
            bucket.ALREADY: str,
            bucket.REFUSED: self.style.WARNING,
            bucket.FAILED: self.style.ERROR,
        }
        steps = bucket.bucket_setup(
            client=storage.s3_client(),
            bucket=name,
            report=lambda step: self.stdout.write(styles[step.outcome](f"  {step}")),
        )
        failed = [step.name for step in steps if step.outcome == bucket.FAILED]
        if failed:
            raise CommandError(f"storage set-up failed at: {', '.join(failed)}")
        refused = [step.name for step in steps if step.outcome == bucket.REFUSED]
        if refused:
            self.stdout.write(
                f"the server refused: {', '.join(refused)} (not supported there; see "
                "docs/operations.md)"
            )
