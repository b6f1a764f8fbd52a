"""The shared Pool conformance suite, run against each of the worker's pools."""

from __future__ import annotations

import pytest

from taskq_testing.pool import PoolConformance, PoolOpener
from taskq_worker.pools.prefork import PreforkPool
from taskq_worker.pools.solo import SoloPool
from taskq_worker.pools.threads import ThreadPool


class TestSoloPool(PoolConformance):
    runs_inline = True
    supports_terminate = False
    resizable = False

    @pytest.fixture
    def open_pool(self) -> PoolOpener:
        return SoloPool


class TestThreadPool(PoolConformance):
    @pytest.fixture
    def open_pool(self) -> PoolOpener:
        return ThreadPool


class TestPreforkPool(PoolConformance):
    survives_process_exit = True

    @pytest.fixture
    def open_pool(self) -> PoolOpener:
        return PreforkPool
