# pyright: strict
"""Conformance suites and the pytest plugin for taskq and its integrations.

An integration proves it honours a contract by subclassing its suite and providing one fixture
(see the README): :class:`taskq_testing.transport.TransportConformance`,
:class:`taskq_testing.backend.BackendConformance`, :class:`taskq_testing.pool.PoolConformance`.
Helpers live in :mod:`taskq_testing.factories`, :mod:`taskq_testing.waiting` and
:mod:`taskq_testing.concurrency`.

Nothing is imported here: pytest loads this package's plugin in every run, and a run that never
touches a suite should not pay for (or break on) importing taskq.
"""

import pytest

# Before any suite is imported, so their plain asserts report the values they compared.
pytest.register_assert_rewrite(
    "taskq_testing.transport", "taskq_testing.backend", "taskq_testing.pool"
)
