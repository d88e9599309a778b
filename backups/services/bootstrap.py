"""Continuous archiving and a first good backup for the cluster `make run` owns (the demo's).

`make run` starts an embedded PostgreSQL in var/pgdata (scripts/local_services.py). This turns
on WAL archiving into the pgBackRest repository (restarting the server when a setting needs
it), creates the stanza, checks archiving end to end, and then takes what the dashboard's tiles
still lack: a verified, restore-tested full backup when there is no recent good one, a restore
drill when the RPO or RTO tile has no passing drill. Run again, it takes nothing that is not
due; from then on Celery beat's schedule keeps the tiles green, as in production.
"""

from __future__ import annotations

from collections.abc import Callable

from backups import cluster, config, dashboard, pgbackrest
from backups.services import archiving, drill, physical

Step = Callable[[str], None]
ProgressFor = Callable[[str], Callable[[float], None]]


def settings_apply(*, ctx: pgbackrest.Context) -> list[str]:
    """Write the pgBackRest config, ALTER SYSTEM the archiving settings and reload; return the
    settings that wait for a restart."""
    config.write_pgbackrest_config(ctx.repo, ctx.target)
    wanted = config.postgresql_settings(ctx.target)
    with cluster.connect(ctx.target, dbname="postgres", autocommit=True) as conn:
        for name, value in wanted.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value.replace(chr(39), chr(39) * 2)}'")
        conn.execute("SELECT pg_reload_conf()")
        # pg_settings.pending_restart only shows once the backend has processed the reload,
        # which pg_reload_conf() merely signals: compare the running values instead.
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE context = 'postmaster' AND name = ANY(%s)",
            [list(wanted)],
        ).fetchall()
    return [name for name, setting in rows if setting != wanted[name]]


def secrets_missing(*, ctx: pgbackrest.Context) -> bool:
    """Whether the running server lacks the repository's secrets (started without them, or
    with old ones): its archive_command would then fail on every segment."""
    environment = cluster.postmaster_environment(ctx.target)
    if environment is None:  # unreadable: `pgbackrest check` will tell
        return False
    wanted = config.secret_environment(ctx.repo)
    return any(environment.get(name) != value for name, value in wanted.items())


def archiving_ensure(*, ctx: pgbackrest.Context, step: Step) -> None:
    """Turn archiving on (restarting the server if needed) and create the stanza (idempotent)."""
    pending = settings_apply(ctx=ctx)
    if pending or secrets_missing(ctx=ctx):
        reason = ", ".join(pending) or "the repository's cipher pass"
        step(f"restarting PostgreSQL to apply {reason}")
        cluster.restart(
            ctx.target,
            env=config.secret_environment(ctx.repo),
            log=ctx.target.data_dir / "log",
        )
    step(f"stanza {ctx.target.stanza!r} in {ctx.repo.location()}")
    physical.stanza_ensure(ctx=ctx)


def red_tiles() -> set[str]:
    return {tile.name for tile in dashboard.tiles() if not tile.ok}


def local_backups_ensure(
    *, step: Step, progress_for: ProgressFor, ctx: pgbackrest.Context | None = None
) -> list[dashboard.Tile]:
    """Set up archiving, then take what the dashboard still lacks; return its tiles."""
    ctx = ctx or pgbackrest.Context.current()
    archiving_ensure(ctx=ctx, step=step)
    step("checking that WAL reaches the repository")
    check = archiving.archive_check_record(ctx=ctx)
    if not check.ok:
        raise pgbackrest.PgBackRestError(
            f"WAL archiving does not work: {check.detail or 'no segment archived yet'}"
        )
    if "Good backup" in red_tiles():
        step("no good backup in the last 36 h: taking a full backup")
        run = physical.backup_run_physical(ctx=ctx, on_progress=progress_for("full backup"))
        step(f"verifying {run.label} and restoring it into a scratch cluster")
        run = physical.backup_verify(run=run, ctx=ctx, on_progress=progress_for("restore test"))
        if not run.is_good():
            raise pgbackrest.PgBackRestError(f"backup {run.label} is not good: {run.error}")
    else:
        step("a good backup from the last 36 h is there: no new one")
    if red_tiles() & {"RPO", "RTO"}:
        step("no passing restore drill: running one (RPO waits for archive_timeout)")
        outcome = drill.drill_run(ctx=ctx, on_progress=progress_for("restore drill"), on_step=step)
        if not outcome.checks_passed:
            raise pgbackrest.PgBackRestError(f"the restore drill failed: {outcome.checks}")
    return dashboard.tiles()
