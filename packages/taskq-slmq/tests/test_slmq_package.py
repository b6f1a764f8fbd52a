"""taskq-slmq installs as one typed package, and every entry point it declares loads."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import taskq_slmq

PLUGIN_GROUPS = ("taskq.transports", "taskq.backends")


def test_slmq_package_ships_py_typed() -> None:
    assert taskq_slmq.__file__ is not None
    assert (Path(taskq_slmq.__file__).parent / "py.typed").is_file()


def test_slmq_entry_points_load() -> None:
    declared = [
        entry_point
        for entry_point in metadata.distribution("taskq-slmq").entry_points
        if entry_point.group in PLUGIN_GROUPS
    ]
    for entry_point in declared:
        assert entry_point.load() is not None, f"{entry_point.group}: {entry_point.name}"
