"""Rigs the tests and the benchmarks share: servers they start, scratch databases, free ports.

Nothing here ships with the application; `scripts/local_services.py` also uses the SeaweedFS
runner to start `make run`'s embedded S3 server.
"""
