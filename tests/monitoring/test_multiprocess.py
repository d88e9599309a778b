"""The multiprocess directory: emptied before a run, dead gunicorn workers marked dead."""

from __future__ import annotations

import io
import subprocess
import sys
import types

from django.core.management import call_command
from prometheus_client import CollectorRegistry, multiprocess

from metis import gunicorn
from monitoring import multiprocess as metrics_files


def _counted_in_child(directory) -> int:
    """Count once (and set a live gauge) in a child process writing into `directory`."""
    code = (
        "from prometheus_client import Counter, Gauge\n"
        "Counter('demo_jobs', 'jobs').inc()\n"
        "Gauge('demo_busy', 'busy', multiprocess_mode='livesum').set(1)\n"
        "import os; print(os.getpid())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def _sample(directory, name: str) -> float | None:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return registry.get_sample_value(name)


def test_metrics_reset_drops_a_previous_runs_counters(settings, tmp_path):
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    _counted_in_child(tmp_path)
    _counted_in_child(tmp_path)
    assert _sample(tmp_path, "demo_jobs_total") == 2

    call_command("metrics_reset", stdout=io.StringIO())

    assert list(tmp_path.glob("*.db")) == []
    assert _sample(tmp_path, "demo_jobs_total") is None


def test_gunicorn_child_exit_marks_the_worker_dead(settings, tmp_path):
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    pid = _counted_in_child(tmp_path)
    assert _sample(tmp_path, "demo_busy") == 1

    gunicorn.child_exit(None, types.SimpleNamespace(pid=pid))

    # Its live gauge is gone; what it counted still counts.
    assert _sample(tmp_path, "demo_busy") is None
    assert _sample(tmp_path, "demo_jobs_total") == 1


def test_directory_reset_creates_a_missing_directory(tmp_path):
    assert metrics_files.directory_reset(tmp_path / "prometheus") == 0
    assert (tmp_path / "prometheus").is_dir()
