"""A suite subclassed without its fixture fails with a message that says what to define."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_missing_fixture_names_what_to_define(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_incomplete="""
        from taskq_testing.backend import BackendConformance
        from taskq_testing.pool import PoolConformance
        from taskq_testing.transport import TransportConformance

        class TestNoTransport(TransportConformance):
            pass

        class TestNoBackend(BackendConformance):
            pass

        class TestNoPool(PoolConformance):
            pass
        """
    )
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "-k",
        "test_is_a_transport or test_is_a_result_backend or test_is_a_pool",
    )
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines_random(
        [
            "*TestNoTransport must define the `open_transport` fixture*",
            "*TestNoBackend must define the `open_backend` fixture*",
            "*TestNoPool must define the `open_pool` fixture*",
        ]
    )


def test_base_classes_are_not_collected(pytester: pytest.Pytester) -> None:
    """Importing a suite into a test module runs nothing until it is subclassed as ``Test...``."""
    pytester.makepyfile(
        test_imports="""
        from taskq_testing.backend import BackendConformance
        from taskq_testing.pool import PoolConformance
        from taskq_testing.transport import TransportConformance
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes()
