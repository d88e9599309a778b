"""Portability: a subject's data (rows, events, document files) as a ZIP the subject downloads.

`models` (the export row), `subjects` (which rows a subject owns), `archive` (the ZIP written
to disk), `services` (request, build, link, expiry), `tasks`, `views` and `urls` (tenant pages).
"""
