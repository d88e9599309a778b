"""Liveness and readiness: `/healthz`, `/readyz` and the Celery heartbeat they report.

Wiring, not a room: the checks reach every service (PostgreSQL's pool, Redis, the object store,
ClickHouse, the broker), so they import the apps, and no app imports them.
"""
