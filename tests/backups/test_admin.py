"""The admin shows the catalog and a green/red tile per recovery target."""

from __future__ import annotations

import datetime
import re

from django.utils import timezone

from backups.models import BackupRun, RestoreDrill, RetentionPolicy, WalArchiveCheck

DASHBOARD = "/admin/backups/backuprun/dashboard/"


def _tile_states(response) -> dict[str, str]:
    html = response.content.decode()
    return dict(re.findall(r'data-tile="([^"]+)" data-ok="(true|false)"', html))


def _drill(**fields) -> RestoreDrill:
    values = {
        "status": "succeeded",
        "checks_passed": True,
        "rto_seconds": 35.0,
        "rpo_seconds": 12.0,
        "rto_target_seconds": 120,
        "rpo_target_seconds": 60,
        "finished_at": timezone.now(),
    }
    return RestoreDrill.objects.create(**(values | fields))


def test_catalog_lists_every_backup_with_its_verification_state(staff_client):
    BackupRun.objects.create(
        kind="full",
        label="20261128-010000F",
        status="succeeded",
        verified=True,
        restore_tested=True,
        size_bytes=10**9,
        stored_bytes=2 * 10**8,
        checksum="sha256:abc",
        location="s3://bucket/system/backups/backup/metis/20261128-010000F",
        finished_at=timezone.now(),
    )
    BackupRun.objects.create(kind="logical", label="20261128T020000Z", status="failed", error="x")

    response = staff_client.get("/admin/backups/backuprun/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "20261128-010000F" in page and "20261128T020000Z" in page
    assert "s3://bucket/system/backups" in page and "sha256:abc" in page
    assert staff_client.get("/admin/backups/restoredrill/").status_code == 200
    assert staff_client.get("/admin/backups/walarchivecheck/").status_code == 200


def test_the_drill_list_shows_and_filters_the_repository_of_each_drill(staff_client):
    _drill(rto_seconds=41.5)
    _drill(repo=2, rto_seconds=97.25)

    page = staff_client.get("/admin/backups/restoredrill/").content.decode()
    only_region2 = staff_client.get("/admin/backups/restoredrill/?repo=2").content.decode()

    assert 'column-repo"' in page and '<td class="field-repo">2</td>' in page
    assert '<td class="field-repo">1</td>' in page
    assert "97.25" in only_region2 and "41.5" not in only_region2


def test_dashboard_tiles_are_green_when_the_latest_drill_and_archive_check_meet_the_targets(
    staff_client,
):
    _drill()
    WalArchiveCheck.objects.create(ok=True, in_repository=True, age_seconds=20)
    BackupRun.objects.create(
        kind="full", label="L", status="succeeded", verified=True, restore_tested=True
    )

    states = _tile_states(staff_client.get(DASHBOARD))

    assert states == {"RPO": "true", "RTO": "true", "WAL archiving": "true", "Good backup": "true"}


def test_dashboard_tiles_turn_red_on_a_slow_drill_failing_archiving_or_no_good_backup(
    staff_client,
):
    _drill(started_at=timezone.now() - datetime.timedelta(days=1))
    _drill(rto_seconds=300.0)  # the latest drill missed the RTO target
    WalArchiveCheck.objects.create(ok=False, detail="archive_command is failing")
    BackupRun.objects.create(kind="full", label="L", status="succeeded", verified=False)

    states = _tile_states(staff_client.get(DASHBOARD))

    assert states == {
        "RPO": "false",
        "RTO": "false",
        "WAL archiving": "false",
        "Good backup": "false",
    }


def test_staff_edit_the_retention_policy_in_the_admin(staff_client):
    policy = RetentionPolicy.objects.get(name="Default")  # created by the data migration
    response = staff_client.post(
        f"/admin/backups/retentionpolicy/{policy.pk}/change/",
        {
            "name": "Default",
            "keep_daily": "14",
            "keep_weekly": "8",
            "keep_monthly": "24",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.keep_daily, policy.keep_weekly, policy.keep_monthly) == (14, 8, 24)


def test_backup_schedules_are_in_beat_and_editable(db):
    from django_celery_beat.models import PeriodicTask

    tasks = set(
        PeriodicTask.objects.filter(task__startswith="backups.").values_list("task", flat=True)
    )
    assert {
        "backups.backup_full",
        "backups.archive_copy",
        "backups.restore_drill",
        "backups.region_loss_drill",
        "backups.archive_check",
        "backups.apply_retention",
        "backups.reap_dead_jobs",
        "backups.cleanup_history",
    } <= tasks
