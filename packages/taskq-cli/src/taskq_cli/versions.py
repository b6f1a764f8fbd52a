# pyright: strict
"""``taskq --version``: every installed taskq distribution and its version.

Packages are released one by one, so one version number would say little; a bug report needs
the version of each (``taskq-core``, ``taskq-worker``, ``taskq-redis``, ...).
"""

from __future__ import annotations

import re
from importlib.metadata import distributions

__all__ = ["installed_versions", "version_text"]

_TASKQ = re.compile(r"^taskq($|-)")


def installed_versions() -> list[tuple[str, str]]:
    """``[("taskq-cli", "0.1.0"), ...]``, sorted by name, each distribution once."""
    found: dict[str, str] = {}
    for dist in distributions():
        name = re.sub(r"[-_.]+", "-", dist.name or "").lower()
        if _TASKQ.match(name):
            found.setdefault(name, dist.version)
    return sorted(found.items())


def version_text() -> str:
    return "\n".join(f"{name} {version}" for name, version in installed_versions())
