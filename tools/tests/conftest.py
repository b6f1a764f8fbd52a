"""Puts tools/ and this directory on sys.path: the tools are scripts, not an installed package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for directory in (HERE.parent, HERE):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from workspace_factory import build_workspace  # noqa: E402  (needs the path above)


@pytest.fixture
def fake_workspace(tmp_path: Path) -> Path:
    """A small workspace that passes every rule: protocol, serializers and the meta-package."""
    return build_workspace(tmp_path / "ws")
