"""Settings for mypy's Django plugin only (pyproject.toml), which imports them to learn the apps.

They are metis.settings with DEBUG on, so that type checking (`make lint`, the pre-commit hook,
CI before any service exists) needs no DJANGO_SECRET_KEY, which the real settings require with
DEBUG off. Nothing runs with them.
"""

import os

os.environ["DJANGO_DEBUG"] = "true"

from metis.settings import *  # noqa: F403
