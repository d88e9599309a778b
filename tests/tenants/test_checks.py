"""The start-up check refuses roles RLS would not bind; rls_audit reports every tenant table."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connections

from tenants import checks

ROOT = Path(__file__).resolve().parents[2]


def run_as(database_url: str, *command: str) -> subprocess.CompletedProcess:
    """Run a command of the project with the runtime role swapped for another."""
    env = {**os.environ, "DATABASE_URL": database_url, "DATABASE_POOL_ENABLED": "false"}
    return subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def check_as(database_url: str) -> subprocess.CompletedProcess:
    return run_as(database_url, "manage.py", "check", "--database", "default")


def url_with_user(user: str) -> str:
    db = settings.DATABASES["default"]
    admin = urlsplit(settings.DATABASE_ADMIN_URL)
    netloc = f"{user}@{admin.netloc.rsplit('@', 1)[-1]}"
    return admin._replace(netloc=netloc, path=f"/{db['NAME']}").geturl()


def error_ids(messages) -> set[str]:
    return {message.id for message in messages}


def test_the_runtime_role_passes(db):
    assert checks.database_posture_errors(connections["default"]) == []


def test_check_command_passes_for_the_runtime_role(db):
    result = check_as(url_with_user(settings.DATABASES["default"]["USER"]))
    assert result.returncode == 0, result.stderr


def test_start_up_check_fires_for_a_superuser(db):
    result = check_as(url_with_user("postgres"))
    assert result.returncode != 0
    assert "tenants.E001" in result.stderr
    assert "superuser" in result.stderr


def test_start_up_check_fires_for_the_table_owner(db):
    result = check_as(url_with_user(settings.DATABASES["owner"]["USER"]))
    assert result.returncode != 0
    assert "tenants.E003" in result.stderr


@pytest.mark.django_db(databases=["default", "owner"])
def test_check_fires_when_a_tenant_table_loses_forced_rls():
    with connections["owner"].cursor() as cursor:
        cursor.execute("ALTER TABLE users NO FORCE ROW LEVEL SECURITY")
    assert "tenants.E004" in error_ids(checks.database_posture_errors(connections["owner"]))


def test_rls_audit_lists_every_tenant_table(db, capsys):
    call_command("rls_audit")
    out = capsys.readouterr().out
    assert "users" in out and "ok" in out
    assert "all guarded" in out


@pytest.mark.django_db(databases=["default", "owner"])
def test_rls_audit_fails_when_a_policy_is_missing(capsys):
    with connections["owner"].cursor() as cursor:
        cursor.execute("DROP POLICY tenant_isolation ON users")
    with pytest.raises(CommandError, match="users"):
        call_command("rls_audit", database="owner")
    assert "MISSING" in capsys.readouterr().out


def test_celery_worker_refuses_to_start_as_a_superuser(db):
    result = run_as(
        url_with_user("postgres"), "-m", "celery", "-A", "metis", "worker", "-P", "solo"
    )
    assert result.returncode != 0
    assert "tenants.E001" in result.stdout + result.stderr
