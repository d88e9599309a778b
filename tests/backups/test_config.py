"""pgBackRest options generated from the BACKUP_* tuning settings."""

from __future__ import annotations

from backups import config


def _options(settings, tmp_path, **overrides) -> dict[str, dict[str, str]]:
    settings.BACKUP_REPO_TYPE = "posix"
    settings.BACKUP_REPO_LOCAL_PATH = str(tmp_path / "repo")
    settings.BACKUP_REPO_CIPHER_PASS = "pass"
    for name, value in overrides.items():
        setattr(settings, name, value)
    return config.pgbackrest_options(config.repo(), config.target())


def test_tuning_settings_reach_the_pgbackrest_options(settings, tmp_path):
    options = _options(
        settings,
        tmp_path,
        BACKUP_COMPRESS_TYPE="lz4",
        BACKUP_COMPRESS_LEVEL=6,
        BACKUP_PROCESS_MAX=3,
        BACKUP_RESTORE_PROCESS_MAX=5,
        BACKUP_BUFFER_SIZE="4MiB",
        BACKUP_REPO_BUNDLE=True,
    )

    glob = options["global"]
    assert glob["compress-type"] == "lz4" and glob["compress-level"] == "6"
    assert glob["process-max"] == "3" and glob["buffer-size"] == "4MiB"
    assert glob["repo1-bundle"] == "y"
    assert options["global:restore"] == {"process-max": "5"}


def test_defaults_leave_pgbackrest_its_own_buffer_size_and_no_level_without_compression(
    settings, tmp_path
):
    glob = _options(settings, tmp_path, BACKUP_COMPRESS_TYPE="none")["global"]

    assert "compress-level" not in glob  # a level means nothing without compression
    assert "buffer-size" not in glob and "repo1-bundle" not in glob
