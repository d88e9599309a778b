"""Print (or, with --apply, apply) what continuous archiving needs on the cluster to back up.

Prints the postgresql.conf settings (wal_level, archive_mode, archive_command,
archive_timeout <= 60 s), the secret-free pgBackRest config, and the environment variables the
PostgreSQL service needs so archive_command can reach the encrypted repository (names only:
secrets are never printed). --apply writes the config, runs ALTER SYSTEM on the cluster,
reloads it, and creates the stanza; wal_level/archive_mode still need a restart.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from backups import config, pgbackrest
from backups.management.commands import _common
from backups.services import bootstrap, physical


class Command(BaseCommand):
    help = "Print or apply the PostgreSQL and pgBackRest settings continuous archiving needs."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--apply", action="store_true")

    def handle(self, *args, apply: bool, **options) -> None:
        try:
            repo, target = config.repo(), config.target()
        except config.BackupConfigError as exc:
            raise _common.fail(exc) from exc
        wanted = config.postgresql_settings(target)
        out = self.stdout.write
        out(
            f"# Cluster: {target.data_dir} (port {target.port}, socket {target.socket_dir}), "
            f"stanza {target.stanza!r}"
        )
        out("# postgresql.conf (or run these as a superuser):")
        for name, value in wanted.items():
            out(f"ALTER SYSTEM SET {name} = '{value}';")
        out(f"\n# pgBackRest config ({config.pgbackrest_config_path()}), no secrets in it:")
        out(config.pgbackrest_config_text(repo, target))
        out("# Environment of the PostgreSQL service (e.g. /etc/postgresql/15/main/environment)")
        out("# and of the backup worker; values come from your secret store, never from this file:")
        for name in config.secret_environment(repo):
            out(f"{name}=<secret>")
        if not apply:
            out("\n(run with --apply to write the config, ALTER SYSTEM and create the stanza)")
            return
        try:
            pending = bootstrap.settings_apply(ctx=pgbackrest.Context(repo=repo, target=target))
            physical.stanza_ensure()
        except _common.EXPECTED_ERRORS as exc:
            raise _common.fail(exc) from exc
        out("applied; stanza ready.")
        if pending:
            out(f"RESTART PostgreSQL to apply: {', '.join(name for (name,) in pending)}")
