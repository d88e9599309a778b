"""The events room: the outbox model and `record_event`, shared by every app.

Each app declares its own event types in its own `<app>/events.py` with `recorder.register`;
`EventsConfig.ready()` imports those modules, so every type is known before the first event.
"""
