"""Alerting: rules over the current figures, alerts with a flapping guard, notifications.

`rules` (what is wrong), `services` (evaluate, acknowledge, deliver), `notify` (mail and
webhook), `queries` (`open_alerts()` for staff pages). docs/operations.md, "Alerts".
"""
