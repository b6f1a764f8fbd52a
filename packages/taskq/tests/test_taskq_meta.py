"""The meta-package ships no code, and each extra installs a workspace member and its extra."""

from __future__ import annotations

from importlib import metadata

import pytest
from packaging.requirements import Requirement

EXTRAS = metadata.metadata("taskq").get_all("Provides-Extra") or []


def _requirements(dist: str, extra: str | None) -> list[Requirement]:
    """``dist``'s base requirements (``extra=None``), or those its ``extra`` adds on this Python."""
    requirements = [Requirement(line) for line in metadata.requires(dist) or []]
    if extra is None:
        return [r for r in requirements if r.marker is None]
    return [
        r for r in requirements
        if r.marker is not None and "extra" in str(r.marker) and r.marker.evaluate({"extra": extra})
    ]  # fmt: skip


def test_meta_package_ships_no_module() -> None:
    files = metadata.files("taskq") or []
    assert not [f for f in files if f.suffix == ".py"]


def test_base_install_is_first_party_only() -> None:
    names = {r.name for r in _requirements("taskq", None)}
    assert names
    assert all(name.startswith("taskq-") for name in names)


@pytest.mark.parametrize("extra", EXTRAS)
def test_every_extra_installs_a_member_and_its_dependencies(extra: str) -> None:
    requirements = _requirements("taskq", extra)
    assert requirements, f"extra {extra} installs nothing"
    for req in requirements:
        assert req.name.startswith("taskq-"), f"{extra} must point at a taskq member"
        assert metadata.version(req.name)
        for member_extra in req.extras:
            deps = _requirements(req.name, member_extra)
            assert deps, f"{req.name} has no extra {member_extra!r}"
            for dep in deps:
                assert metadata.version(dep.name), f"{dep.name} ({extra}) is not installed"
