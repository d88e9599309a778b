"""manage.py audit_anchor: write every chain's head to object storage now (the daily task)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from audit import anchors


class Command(BaseCommand):
    help = "Anchor each audit chain's head in object storage (Object Lock where available)."

    def handle(self, *args, **options):
        for anchor in anchors.anchor_all():
            self.stdout.write(f"chain {anchor.chain}: seq {anchor.seq} → {anchor.key}")
