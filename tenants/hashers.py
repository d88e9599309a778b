"""The password hasher every password is stored with: Argon2id, sized for a threaded server."""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class MetisArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id at OWASP's recommended setting: 19 MiB of memory, 2 passes, 1 lane.

    Django's defaults (100 MiB, 2 passes, 8 lanes) suit a process that hashes one password at a
    time. gunicorn here runs 2 workers x 64 threads (metis/gunicorn.py), and argon2-cffi hashes
    outside the GIL, so a burst of sign-ins can have 128 hashes in flight: 12.5 GiB of memory at
    Django's setting, 2.4 GiB at this one. Eight lanes buy nothing on a two-core machine either;
    on one, a hash took ~170 ms at Django's setting and ~34 ms at this one. OWASP's Password
    Storage Cheat Sheet recommends at least m=19 MiB, t=2, p=1, and lists its settings with more
    memory and fewer passes as equal in defence: we take the one that costs least memory.

    The algorithm name stays Django's "argon2": each hash is a standard Argon2id string carrying
    its own parameters, so any Argon2 hash still verifies, and one made with other parameters
    (Django's, or these after a change) is rehashed at the user's next sign-in (`must_update`).
    """

    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
