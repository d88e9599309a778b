"""Layout: which package may import which (docs/architecture.md, STYLE.md "Layout").

The source is read with `ast`, not imported, so a rule holds for every module, including ones no
test happens to import. Migrations are exempt: data migrations use the `metis.beat` helper.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("tenants", "documents", "analytics", "backups", "monitoring", "audit", "privacy")
FEATURE_APPS = ("documents", "analytics", "backups", "monitoring", "privacy")
# metis's wiring: what assembles the apps. Apps may use metis's shared rooms (metis.objectstore,
# metis.events) and the metis.beat helper, never these.
WIRING = (
    "metis.settings",
    "metis.urls",
    "metis.tenant_urls",
    "metis.admin_site",
    "metis.apps",
    "metis.celery",
    "metis.wsgi",
    "metis.asgi",
    "metis.gunicorn",
    "metis.body_deadline",
    "metis.csp_reports",
    "metis.logs",
    "metis.sentry",
    "metis.checks",
    "metis.errors",
    "metis.typecheck_settings",
    "metis.health",
    "metis.unavailable",
)


def modules(package: str) -> list[Path]:
    """Return the package's Python files, migrations left out."""
    return [
        path
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.relative_to(ROOT).parts
    ]


def imported(path: Path) -> set[str]:
    """Return every module name `path` imports, at any depth (functions included).

    `from metis import settings` yields both `metis` and `metis.settings`, since the name may be a
    submodule; relative imports are resolved against the file's package.
    """
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package)
        for name in sorted(imported(path))
        if within(name, forbidden)
    ]


def test_the_rules_see_every_app():
    for package in APPS:
        assert len(modules(package)) > 5, f"no modules found under {package}/: fix the test"


def test_tenants_imports_no_feature_app():
    assert offending("tenants", (*FEATURE_APPS, "audit")) == []


def test_audit_imports_no_feature_app():
    """The audit trail sits beside tenants: every app may record into it, it reads none of
    them (their writes reach it through the database's triggers)."""
    assert offending("audit", FEATURE_APPS) == []


def test_only_backups_and_monitoring_import_privacy():
    # backups replays the erasure ledger after restores; the apps privacy erases from never
    # import it back.
    for package in ("documents", "analytics"):
        assert offending(package, ("privacy",)) == []


@pytest.mark.parametrize("package", APPS)
def test_no_app_imports_metis_wiring(package):
    assert offending(package, WIRING) == []


def test_the_import_reader_sees_every_form(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    source = tmp_path / "tenants" / "sub" / "module.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "import analytics.views\n"
        "from documents import services\n"
        "from metis import settings\n"
        "def f():\n"
        "    from backups.models import BackupRun\n"
        "from .. import admin_site\n"
    )
    assert imported(source) >= {
        "analytics.views",
        "documents",
        "documents.services",
        "metis.settings",
        "backups.models",
        "tenants.admin_site",
    }
    assert within("metis.settings", WIRING) and not within("metis.settingsx", WIRING)
    assert not within("metis.objectstore", WIRING) and not within("metis.events.models", WIRING)
