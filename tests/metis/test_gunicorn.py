"""gunicorn settings: threaded workers, every figure from the environment."""

import importlib

from metis import gunicorn


def test_defaults_are_threaded_workers_with_room_for_slow_clients(monkeypatch):
    for name in ("GUNICORN_BIND", "GUNICORN_WORKERS", "GUNICORN_THREADS", "PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = importlib.reload(gunicorn)

    assert settings.worker_class == "gthread"
    assert settings.wsgi_app == "metis.wsgi:application"
    assert settings.bind == "127.0.0.1:8000"
    assert settings.workers * settings.threads >= 120  # 100 slow uploads + 20 ordinary clients


def test_environment_sets_workers_threads_and_timeouts(monkeypatch):
    monkeypatch.setenv("PORT", "9100")
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    monkeypatch.setenv("GUNICORN_THREADS", "16")
    monkeypatch.setenv("GUNICORN_TIMEOUT", "45")
    monkeypatch.setenv("GUNICORN_KEEPALIVE", "2")
    try:
        settings = importlib.reload(gunicorn)

        assert settings.bind == "127.0.0.1:9100"
        assert (settings.workers, settings.threads) == (3, 16)
        assert (settings.timeout, settings.keepalive) == (45, 2)
    finally:
        monkeypatch.undo()
        importlib.reload(gunicorn)
