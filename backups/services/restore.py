"""Point-in-time restore into a new cluster beside the live one.

pgBackRest lays down the backup and writes the recovery settings (restore_command, the
target, promote); PostgreSQL replays archived WAL up to the target. The restored cluster gets
its own port and socket and does not archive: it must never push WAL into the live stanza.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backups import cluster, config, pgbackrest
from privacy.erasure import ledger


class RestoreRefused(RuntimeError):
    """Raised when a restore would overwrite something it must not."""


@dataclass(frozen=True)
class RestoreOutcome:
    data_dir: Path
    port: int
    socket_dir: Path
    reached_time: datetime.datetime | None  # the last transaction replayed
    usable_after_seconds: float  # restore start to accepting writes


def refuse_unsafe_target(*, data_dir: Path, live: config.Target, force: bool) -> None:
    """Refuse the live data directory, or any non-empty directory, unless forced."""
    resolved = data_dir.resolve()
    if resolved == live.data_dir.resolve() and not force:
        raise RestoreRefused(
            f"{data_dir} is the live cluster's data directory; use --force to restore over it"
        )
    if resolved.exists() and any(resolved.iterdir()) and not force:
        raise RestoreRefused(f"{data_dir} is not empty; choose a new directory or use --force")


def _scratch_settings(target: config.Target) -> dict[str, str]:
    return {
        **cluster.local_settings(target),
        "archive_mode": "off",
        # Debian keeps these outside the data directory; a restored copy uses its own.
        "hba_file": str(target.data_dir / "pg_hba.conf"),
        "ident_file": str(target.data_dir / "pg_ident.conf"),
    }


def _complete_config_files(target: config.Target) -> None:
    # A Debian cluster's postgresql.conf and pg_hba.conf live in /etc, not in the backup.
    conf = target.data_dir / "postgresql.conf"
    if not conf.exists():
        conf.write_text("# written by backups.restore: the source kept its config elsewhere\n")
    hba = target.data_dir / "pg_hba.conf"
    if not hba.exists() or "metis restore" not in hba.read_text():
        # The socket directory is private to the OS user (0700): local trust reaches only it.
        hba.write_text("# metis restore: local socket only\nlocal all all trust\n")
    (target.data_dir / "pg_ident.conf").touch()
    for path in (conf, hba, target.data_dir / "pg_ident.conf"):
        config.chown_to(path, target.os_user)


def restore_cluster(
    *,
    ctx: pgbackrest.Context,
    target: config.Target,
    set_label: str | None = None,
    target_time: datetime.datetime | None = None,
    target_xid: str | None = None,
    immediate: bool = False,
    force: bool = False,
    repo: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> RestoreOutcome:
    """Restore into `target.data_dir`, start it, wait until promoted; return what it reached.

    With no target: replay to the end of the archive. `immediate`: stop as soon as the backup
    is consistent. `target_time` / `target_xid`: stop just after that commit (inclusive).
    `repo`: read the backup and the WAL from that repository alone (the region-loss drill);
    None lets pgBackRest take the first repository that has what the target needs.
    """
    started = time.monotonic()
    refuse_unsafe_target(data_dir=target.data_dir, live=config.target(), force=force)
    cluster.prepare_data_dir(target.data_dir, target.os_user)
    cluster.prepare_data_dir(target.socket_dir, target.os_user)
    options = [f"--pg1-path={target.data_dir}"]
    if repo is not None:
        # pgBackRest carries --repo into the restore_command it writes: the replayed WAL comes
        # from that repository too, never from the other one.
        options.append(f"--repo={repo}")
    if set_label:
        options.append(f"--set={set_label}")
    if force:
        options.append("--delta")
    if immediate:
        options.append("--type=immediate")
    elif target_time is not None:
        options += ["--type=time", f"--target={target_time.isoformat(sep=' ')}"]
    elif target_xid is not None:
        options += ["--type=xid", f"--target={target_xid}"]
    if immediate or target_time is not None or target_xid is not None:
        options.append("--target-action=promote")  # with no target, recovery ends by promoting
    pgbackrest.run_streaming(ctx, "restore", *options, on_progress=on_progress)
    _complete_config_files(target)
    cluster.write_settings(target, _scratch_settings(target))
    cluster.start(target, env=config.secret_environment(ctx.repo), timeout=3600)
    cluster.wait_until_usable(target)
    usable_after = time.monotonic() - started
    with cluster.connect(target, dbname="postgres") as conn:
        reached = conn.execute("SELECT pg_last_xact_replay_timestamp()").fetchone()[0]
    # A restored database may hold subjects erased since the backup: erase them again.
    with cluster.connect(target) as conn:
        ledger.ledger_replay_cluster(conn)
    return RestoreOutcome(
        data_dir=target.data_dir,
        port=target.port,
        socket_dir=target.socket_dir,
        reached_time=reached,
        usable_after_seconds=usable_after,
    )


def restore_point_in_time(
    *,
    data_dir: Path,
    to: datetime.datetime | None,
    port: int | None = None,
    force: bool = False,
    repo: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> RestoreOutcome:
    """Restore the stanza into a new cluster at `data_dir`, replayed to `to` (or the end);
    `repo` 2 reads the second region's repository alone."""
    ctx = pgbackrest.Context.current()
    if repo is not None:
        ctx.repo.numbered(repo)  # refuse a region that is not configured
    data_dir = data_dir.absolute()
    target = config.Target(
        **{
            **ctx.target.__dict__,
            "data_dir": data_dir,
            "port": port or cluster.free_port(),
            "socket_dir": data_dir,
        }
    )
    return restore_cluster(
        ctx=ctx, target=target, target_time=to, force=force, repo=repo, on_progress=on_progress
    )
