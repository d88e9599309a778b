"""Run pgBackRest with the repository's secrets in its environment, never in a file.

Every command writes the secret-free configuration first, so PostgreSQL's `archive_command`
and our own calls read the same options. Long commands stream pgBackRest's per-file log lines;
their running percentage feeds a progress callback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from backups import config

# "backup file /path (16MB, 72.51%) checksum ..." / "restore file ... (8KB, 3.20%) ..."
_PERCENT = re.compile(r"\((?:[^,()]+), (\d+(?:\.\d+)?)%\)")


INSTALL_HINT = (
    "pgBackRest is not installed on this machine (no `pgbackrest` on the PATH): install it "
    "(apt-get install pgbackrest; dnf install pgbackrest; brew install pgbackrest), then run "
    '`make run` again (or, on a server, see docs/operations.md, "Backups and recovery").'
)


def missing_notice() -> str:
    """Return what to install when pgBackRest is not on the PATH, else an empty string."""
    return "" if shutil.which("pgbackrest") else INSTALL_HINT


class PgBackRestError(RuntimeError):
    """Raised when a pgBackRest command fails; carries the tail of its output."""


@dataclass(frozen=True)
class Context:
    repo: config.Repo
    target: config.Target

    @classmethod
    def current(cls) -> Context:
        return cls(repo=config.repo(), target=config.target())


def _argv(ctx: Context, command: str, options: list[str]) -> list[str]:
    path = config.write_pgbackrest_config(ctx.repo, ctx.target)
    flags = [option for option in options if option.startswith("--")]
    parameters = [option for option in options if not option.startswith("--")]
    return config.as_os_user(
        [
            "pgbackrest",
            f"--config={path}",
            f"--stanza={ctx.target.stanza}",
            *flags,
            command,
            *parameters,
        ],
        ctx.target.os_user,
    )


def _environment(ctx: Context) -> dict[str, str]:
    return {**os.environ, **config.secret_environment(ctx.repo)}


def run(ctx: Context, command: str, *options: str, timeout: float | None = None) -> str:
    """Run a short pgBackRest command; return its stdout."""
    try:
        completed = subprocess.run(
            _argv(ctx, command, ["--log-level-console=warn", *options]),
            env=_environment(ctx),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
        )
    except subprocess.TimeoutExpired as exc:
        raise PgBackRestError(f"pgbackrest {command} did not finish in {timeout}s") from exc
    if completed.returncode != 0:
        output = (completed.stderr + completed.stdout).strip()
        raise PgBackRestError(
            f"pgbackrest {command} failed ({completed.returncode}): {output[-3000:]}"
        )
    return completed.stdout


def run_streaming(
    ctx: Context,
    command: str,
    *options: str,
    on_progress: Callable[[float], None] | None = None,
    on_start: Callable[[subprocess.Popen], None] | None = None,
) -> str:
    """Run a long pgBackRest command, reporting its percent done; return its output."""
    process = subprocess.Popen(
        _argv(ctx, command, ["--log-level-console=detail", *options]),
        env=_environment(ctx),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd="/",
    )
    if on_start is not None:
        on_start(process)
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            match = _PERCENT.search(line)
            if match and on_progress is not None:
                on_progress(float(match.group(1)))
    except BaseException:
        # A soft time limit (or any error of ours) ends pgBackRest too: left running, it would
        # keep the stanza's lock and the next backup would fail on it.
        process.kill()
        process.wait()
        raise
    returncode = process.wait()
    output = "".join(lines)
    if returncode != 0:
        errors = [line for line in lines if "ERROR" in line or "WARN" in line] or lines[-20:]
        raise PgBackRestError(
            f"pgbackrest {command} failed ({returncode}): {''.join(errors)[-3000:]}"
        )
    return output


def info(ctx: Context, *, repo: int = 1) -> dict:
    """Return pgBackRest's JSON info for the stanza in one repository (backups, WAL range)."""
    stanzas = json.loads(run(ctx, "info", "--output=json", f"--repo={repo}"))
    return stanzas[0] if stanzas else {}


def backups(ctx: Context, *, repo: int = 1) -> list[dict]:
    return info(ctx, repo=repo).get("backup", [])


def backup_by_label(ctx: Context, label: str, *, repo: int = 1) -> dict | None:
    return next((b for b in backups(ctx, repo=repo) if b["label"] == label), None)


def newest_archived_wal(ctx: Context, *, repo: int) -> str:
    """Return the newest WAL segment in repository `repo` ("" if none), read from it alone."""
    archives = info(ctx, repo=repo).get("archive", [])
    return max((archive.get("max") or "" for archive in archives), default="")


@dataclass(frozen=True)
class VerifyResult:
    report: str
    valid_backups: tuple[str, ...]
    invalid_backups: tuple[str, ...]
    wal_ok: bool

    def backup_ok(self, label: str) -> bool:
        return self.wal_ok and label in self.valid_backups


_BACKUP_STATUS = re.compile(r"backup: (\S+), status: (\S+?),")
_WAL_COUNTS = re.compile(r"total WAL checked: (\d+), total valid WAL: (\d+)")


def verify(ctx: Context, *, repo: int = 1) -> VerifyResult:
    """Check every file of every backup and WAL segment against its recorded checksum and size.

    pgBackRest exits 0 even when it finds damage; the verdict is in its text report. (2.45 has
    no `verify --set`, so the whole repository is checked; damaged WAL fails every backup.)
    """
    report = run(ctx, "verify", "--output=text", "--verbose", f"--repo={repo}")
    statuses = _BACKUP_STATUS.findall(report)
    wal_counts = _WAL_COUNTS.findall(report)
    return VerifyResult(
        report=report,
        valid_backups=tuple(label for label, status in statuses if status == "valid"),
        invalid_backups=tuple(label for label, status in statuses if status != "valid"),
        wal_ok=bool(wal_counts) and all(checked == valid for checked, valid in wal_counts),
    )
