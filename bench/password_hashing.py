"""What a password check costs with the hasher sign-in uses, against Django's own choices.

Three hashers, measured in the same run on the same passwords, alternated round by round:

- ours: `tenants.hashers.MetisArgon2PasswordHasher` (Argon2id, 19 MiB, 2 passes, 1 lane), the
  first of PASSWORD_HASHERS;
- Django's Argon2 defaults (100 MiB, 2 passes, 8 lanes);
- Django's default hasher, PBKDF2-SHA256 at Django 5.2's 1,000,000 iterations: the baseline.

For each it prints the median time of one `check_password` and the time for a burst of
`--burst` checks on `--threads` threads (sign-ins arriving together: gunicorn runs 2 x 64
threads, and argon2-cffi hashes outside the GIL), with ratios against PBKDF2, and the memory a
burst needs at each Argon2 setting. No database: hashing is all a check costs beyond one query.

    .venv/bin/python bench/password_hashing.py [--rounds 20] [--burst 32] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")

import django

django.setup()

from django.contrib.auth.hashers import (  # noqa: E402
    Argon2PasswordHasher,
    PBKDF2PasswordHasher,
)

from tenants.hashers import MetisArgon2PasswordHasher  # noqa: E402

PASSWORD = "correct horse battery staple"


def one_check(hasher, encoded: str) -> float:
    start = time.perf_counter()
    assert hasher.verify(PASSWORD, encoded)
    return time.perf_counter() - start


def burst(hasher, encoded: str, *, size: int, threads: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        assert all(pool.map(lambda _: hasher.verify(PASSWORD, encoded), range(size)))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--burst", type=int, default=32)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    hashers = {
        "ours: Argon2id 19 MiB, t=2, p=1": MetisArgon2PasswordHasher(),
        "Django's Argon2 100 MiB, t=2, p=8": Argon2PasswordHasher(),
        "baseline: PBKDF2-SHA256 1,000,000": PBKDF2PasswordHasher(),
    }
    encoded = {name: h.encode(PASSWORD, h.salt()) for name, h in hashers.items()}
    singles: dict[str, list[float]] = {name: [] for name in hashers}
    bursts: dict[str, list[float]] = {name: [] for name in hashers}
    for _ in range(args.rounds):  # alternated, so load on the machine falls on all alike
        for name, hasher in hashers.items():
            singles[name].append(one_check(hasher, encoded[name]))
    for _ in range(max(1, args.rounds // 5)):
        for name, hasher in hashers.items():
            bursts[name].append(burst(hasher, encoded[name], size=args.burst, threads=args.threads))

    baseline = next(name for name in hashers if name.startswith("baseline"))
    base_single = statistics.median(singles[baseline])
    base_burst = statistics.median(bursts[baseline])
    print(
        f"{os.cpu_count()} CPUs; {args.rounds} rounds; "
        f"bursts of {args.burst} on {args.threads} threads"
    )
    print(f"{'hasher':38} {'one check':>11} {'ratio':>7} {'burst':>9} {'ratio':>7} {'memory':>9}")
    for name, hasher in hashers.items():
        single = statistics.median(singles[name])
        whole = statistics.median(bursts[name])
        memory = (
            f"{hasher.memory_cost * min(args.threads, args.burst) / 1024:.0f} MiB"
            if isinstance(hasher, Argon2PasswordHasher)
            else "-"
        )
        print(
            f"{name:38} {single * 1000:9.1f}ms {single / base_single:6.2f}x "
            f"{whole:8.2f}s {whole / base_burst:6.2f}x {memory:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
