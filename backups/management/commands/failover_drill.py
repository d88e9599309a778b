"""Run a failover drill: stop the primary, promote the standby, move there; RTO and RPO recorded.

This is a real failover of the database this process uses (backups/services/failover.py):
afterwards the old primary is down and the standby is the primary.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from backups import cluster, config
from backups.services import failover


def _local_cluster(data_dir: str, *, bin_dir: str, os_user: str) -> config.Target:
    # pg_ctl needs only the data directory, the binaries and the OS user.
    path = Path(data_dir)
    return config.Target(
        stanza="",
        data_dir=path,
        port=0,
        socket_dir=path,
        bin_dir=Path(bin_dir),
        os_user=os_user,
        database="",
    )


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("--primary-data-dir", default=settings.FAILOVER_PRIMARY_DATA_DIR)
        parser.add_argument("--standby-data-dir", default=settings.FAILOVER_STANDBY_DATA_DIR)
        parser.add_argument(
            "--standby-url",
            default=settings.FAILOVER_STANDBY_URL,
            help="The application role's URL on the standby (what DATABASE_URL becomes).",
        )
        parser.add_argument("--pg-bin-dir", default=settings.BACKUP_PG_BIN_DIR)
        parser.add_argument("--os-user", default=settings.BACKUP_PG_OS_USER)
        parser.add_argument("--tenant", default="", help="Subdomain of the tenant page to probe.")
        parser.add_argument(
            "--rto-target", type=float, default=settings.FAILOVER_RTO_TARGET_SECONDS
        )
        parser.add_argument("--timeout", type=float, default=120)

    def handle(self, *args, **options) -> None:
        if not (options["primary_data_dir"] and options["standby_data_dir"]):
            raise CommandError("name both data directories (FAILOVER_*_DATA_DIR or the options)")
        if not options["standby_url"]:
            raise CommandError("name the standby (FAILOVER_STANDBY_URL or --standby-url)")
        tools = {"bin_dir": options["pg_bin_dir"], "os_user": options["os_user"]}
        pair = failover.FailoverPair(
            primary=_local_cluster(options["primary_data_dir"], **tools),
            standby=_local_cluster(options["standby_data_dir"], **tools),
            standby_url=options["standby_url"],
        )
        try:
            drill = failover.failover_drill_run(
                pair=pair,
                rto_target_seconds=options["rto_target"],
                tenant_subdomain=options["tenant"] or None,
                base_domain=settings.METIS_BASE_DOMAIN,
                timeout=options["timeout"],
                on_step=lambda name: self.stderr.write(f"failover drill: {name}"),
            )
        except (failover.FailoverError, cluster.ClusterError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Failover drill {drill.pk}: RTO {drill.rto_seconds:.2f}s "
            f"(target {drill.rto_target_seconds:.0f}s, {'met' if drill.rto_met() else 'MISSED'}), "
            f"RPO {drill.rpo_transactions_lost} committed transactions lost of "
            f"{drill.markers_acknowledged} acknowledged (synchronous_commit "
            f"{drill.synchronous_commit}); the application now uses {drill.standby_server}"
        )
        if not (drill.rto_met() and drill.rpo_met()):
            raise CommandError("the failover missed its RTO or RPO target")
