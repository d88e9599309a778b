"""Backup throughput: pgBackRest vs the same work done by a plain pipeline, to the same S3.

Both copy the same cluster in the same run, alternated round by round, into the same bucket on
the same TLS SeaweedFS:

- pgBackRest: `backup_run_physical(kind="full")` with the configured options (BACKUP_*).
- baseline: `pg_basebackup -Ft -D - -X fetch -c fast` (one tar on stdout) | the same compressor
  at the same level (`zstd -T1 -3` for zst) | `openssl enc -aes-256-cbc -md sha1` (the cipher
  and key derivation of pgBackRest's repository) | a boto3 streamed multipart upload
  (`upload_fileobj` of the pipe, over https).

Figures: MB/s of each (database bytes / wall time), their ratio (> 1: pgBackRest is faster) and
the CPU seconds each spent per database GB, split by process (tools, S3 server, PostgreSQL), so
a limit set by the two shared cores shows as CPU time. Run:

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/backup_throughput.py [--mb 1024]
        [--rounds 2] [--tables 4] [--process-max N] [--compress-type zst] [--compress-level N]
        [--buffer-size 1MiB] [--upload-chunk-size 16MiB]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import urllib3
from _backup_common import as_user, backup_sandbox, load_table, postmaster_pid, wait_archive_idle
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from django.conf import settings

from backups import config
from backups.services import physical

# pgBackRest's default level for each compress-type (`pgbackrest help backup compress-level`).
DEFAULT_LEVEL = {"zst": 3, "lz4": 1, "gz": 6}
TICK = os.sysconf("SC_CLK_TCK")


def compressor(kind: str, level: int) -> list[str] | None:
    # One thread, as pgBackRest compresses each file in one process.
    return {
        "zst": ["zstd", "-T1", f"-{level}", "-q", "-c"],
        "lz4": ["lz4", f"-{level}", "-q", "-c"],
        "gz": ["gzip", f"-{level}", "-c"],
        "none": None,
    }[kind]


def proc_cpu(pid: int) -> float:
    """CPU seconds of a live process and of its children it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK  # utime stime cutime cstime


def own_cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Sample:
    seconds: float
    stored: int
    cpu: dict[str, float] = field(default_factory=dict)


class CpuMeter:
    """CPU seconds spent by the tool (our children and this process), the S3 server and the
    PostgreSQL cluster (its postmaster reaps the walsender pg_basebackup talks to)."""

    def __init__(self, box) -> None:
        self.pids = {"s3 server": box.s3.process.pid, "postgres": postmaster_pid(box)}

    def snapshot(self) -> dict[str, float]:
        return {
            "tool": own_cpu(resource.RUSAGE_CHILDREN) + own_cpu(resource.RUSAGE_SELF),
            **{name: proc_cpu(pid) for name, pid in self.pids.items()},
        }

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {name: after[name] - before[name] for name in before}


def pipeline_backup(box, repo: config.Repo, *, key: str) -> tuple[int, dict[str, float]]:
    """Stream pg_basebackup | compress | encrypt into S3; return stored bytes and CPU per stage."""
    level = repo.compress_level or DEFAULT_LEVEL.get(repo.compress_type, 0)
    stages = [
        as_user(
            [
                box.target.tool("pg_basebackup"),
                *("-h", str(box.target.socket_dir), "-p", str(box.target.port), "-U", "postgres"),
                *("-D", "-", "-Ft", "-X", "fetch", "-c", "fast"),
            ],
            box,
        ),
        compressor(repo.compress_type, level),
        ["openssl", "enc", "-aes-256-cbc", "-md", "sha1", "-pass", "env:METIS_BENCH_PASS"],
    ]
    env = {**os.environ, "METIS_BENCH_PASS": repo.cipher_pass}
    processes: list[subprocess.Popen] = []
    upstream = None
    for argv in filter(None, stages):
        process = subprocess.Popen(
            argv,
            stdin=upstream,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd="/",
        )
        if upstream is not None:
            upstream.close()  # only the next stage holds the read end
        upstream = process.stdout
        processes.append(process)
    client = boto3.client(
        "s3",
        endpoint_url=f"https://{repo.endpoint_host}:{repo.endpoint_port}",
        aws_access_key_id=repo.access_key,
        aws_secret_access_key=repo.secret_key,
        region_name=repo.region,
        verify=False,
        config=Config(s3={"addressing_style": "path"}),
    )
    upload_started = own_cpu(resource.RUSAGE_SELF)
    client.upload_fileobj(upstream, repo.bucket, key, Config=TransferConfig())
    cpu = {"upload (boto3)": own_cpu(resource.RUSAGE_SELF) - upload_started}
    for argv, process in zip(filter(None, stages), processes, strict=True):
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {process.returncode}")
        name = os.path.basename(argv[4] if argv[0] == "runuser" else argv[0])
        cpu[name] = usage.ru_utime + usage.ru_stime
    stored = client.head_object(Bucket=repo.bucket, Key=key)["ContentLength"]
    client.delete_object(Bucket=repo.bucket, Key=key)
    return stored, cpu


def apply_options(args) -> None:
    for name, value in {
        "BACKUP_COMPRESS_TYPE": args.compress_type,
        "BACKUP_COMPRESS_LEVEL": args.compress_level,
        "BACKUP_PROCESS_MAX": args.process_max,
        "BACKUP_BUFFER_SIZE": args.buffer_size,
        "BACKUP_S3_UPLOAD_CHUNK_SIZE": args.upload_chunk_size,
        "BACKUP_REPO_BUNDLE": args.bundle,
    }.items():
        if value is not None:
            setattr(settings, name, value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    # The same bytes spread over four tables, as a database of many tables holds them; `--tables 1`
    # puts them in one 1 GB file, which pgBackRest gives to one process whatever process-max is.
    parser.add_argument("--tables", type=int, default=4)
    parser.add_argument("--compress-type", choices=["zst", "lz4", "gz", "none"])
    parser.add_argument("--compress-level", type=int)
    parser.add_argument("--process-max", type=int)
    parser.add_argument("--buffer-size")
    parser.add_argument("--upload-chunk-size")
    parser.add_argument("--bundle", action=argparse.BooleanOptionalAction)
    args = parser.parse_args()
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # self-signed sandbox
    with backup_sandbox() as box:
        apply_options(args)
        repo = config.repo()
        print(
            "pgBackRest options: "
            + " ".join(
                f"{name}={value}"
                for name, value in config.pgbackrest_options(repo, box.target)["global"].items()
                if name.startswith(
                    ("compress", "process", "buffer", "repo1-storage-upload", "repo1-bundle")
                )
            )
        )
        size = load_table(box, megabytes=args.mb, tables=args.tables)
        wait_archive_idle(box)
        meter = CpuMeter(box)
        results: dict[str, list[Sample]] = {"pipeline": [], "pgbackrest": []}
        for round_number in range(1, args.rounds + 1):
            before = meter.snapshot()
            started = time.monotonic()
            stored, stages = pipeline_backup(box, repo, key=f"bench/{uuid.uuid4().hex}.tar.enc")
            sample = Sample(
                time.monotonic() - started, stored, meter.spent(before, meter.snapshot())
            )
            sample.cpu |= {f"  {name}": seconds for name, seconds in stages.items()}
            results["pipeline"].append(sample)

            before = meter.snapshot()
            started = time.monotonic()
            run = physical.backup_run_physical(kind="full")
            seconds = time.monotonic() - started
            results["pgbackrest"].append(
                Sample(seconds, run.stored_bytes, meter.spent(before, meter.snapshot()))
            )
            print(
                f"round {round_number}: pipeline {results['pipeline'][-1].seconds:.1f}s, "
                f"pgbackrest {seconds:.1f}s"
            )
        report(size, results)


def report(size: int, results: dict[str, list[Sample]]) -> None:
    gb = size / 1e9
    best = {name: min(samples, key=lambda s: s.seconds) for name, samples in results.items()}
    print(f"\ndatabase {size / 1e6:.0f} MB")
    for name, sample in best.items():
        rate = size / 1e6 / sample.seconds
        total = sum(v for k, v in sample.cpu.items() if not k.startswith(" "))
        print(
            f"{name:11s} best {sample.seconds:6.1f}s {rate:7.1f} MB/s, stored "
            f"{sample.stored / 1e6:.0f} MB; CPU {total / gb:.1f} s/GB "
            f"({total / sample.seconds:.2f} cores busy)"
        )
        for part, seconds in sample.cpu.items():
            print(f"    {part:18s} {seconds / gb:6.2f} CPU s/GB")
    ratio = best["pipeline"].seconds / best["pgbackrest"].seconds
    print(f"ratio pgbackrest / pipeline throughput: {ratio:.2f}")
    # On a shared, overloaded machine the scheduler hands CPU per runnable process: the
    # pipeline's four processes and upload threads get more of it than pgBackRest's workers.
    # The same work per CPU second is what the engines cost, whoever gets the cores.
    cpu = {
        name: sum(v for k, v in s.cpu.items() if not k.startswith(" ")) for name, s in best.items()
    }
    print(f"ratio pgbackrest / pipeline per CPU second: {cpu['pipeline'] / cpu['pgbackrest']:.2f}")


if __name__ == "__main__":
    main()
