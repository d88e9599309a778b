"""Create and configure the documents bucket; print what was applied and what was refused."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from metis.objectstore import bucket, store


class Command(BaseCommand):
    help = (
        "Create the documents bucket if missing and apply versioning, default encryption, the "
        "bucket policy and the lifecycle rules; with DOCUMENTS_DR_BUCKET, the DR bucket too "
        "(versioning, encryption) and, on AWS, the replication rule. Safe to run again: it "
        "writes only what differs."
    )

    def handle(self, *args, **options) -> None:
        documents = store.documents_store()
        self.stdout.write(f"bucket {documents.bucket} at {documents.endpoint.url or 'AWS'}")
        styles = {
            bucket.APPLIED: self.style.SUCCESS,
            bucket.ALREADY: str,
            bucket.REFUSED: self.style.WARNING,
            bucket.FAILED: self.style.ERROR,
            bucket.NOTED: str,
        }

        def report(step: bucket.SetupStep) -> None:
            self.stdout.write(styles[step.outcome](f"  {step}"))

        steps = bucket.bucket_setup(store=documents, report=report)
        dr = store.documents_dr_store()
        if dr is not None:
            self.stdout.write(f"DR bucket {dr.bucket} at {dr.endpoint.url or 'AWS'}")
            steps += bucket.dr_bucket_setup(store=documents, dr_store=dr, report=report)
        failed = [step.name for step in steps if step.outcome == bucket.FAILED]
        if failed:
            raise CommandError(f"storage set-up failed at: {', '.join(failed)}")
        refused = [step.name for step in steps if step.outcome == bucket.REFUSED]
        if refused:
            self.stdout.write(
                f"the server refused: {', '.join(refused)} (not supported there; see "
                "docs/operations.md)"
            )
