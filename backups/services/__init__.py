"""Backup services, one module per job: runs (catalog lifecycle, reaper), physical, restore,
drill, archiving, retention, logical, tenant_export, analytics."""
