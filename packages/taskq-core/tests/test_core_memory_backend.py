"""What only the memory result backend has: stores found by name within the process."""

from __future__ import annotations

import uuid

import pytest

from taskq.backends.memory import MemoryBackend
from taskq.contracts import BackendError, BackendOptions
from taskq_protocol import ResultMeta, states
from taskq_serializers import EncodeError


def test_backends_of_one_name_share_a_store_and_other_names_do_not() -> None:
    name = uuid.uuid4().hex
    worker = MemoryBackend(f"memory://{name}", BackendOptions())
    client = MemoryBackend(f"memory://{name}", BackendOptions())
    stranger = MemoryBackend(f"memory://{name}-2", BackendOptions())
    stored = ResultMeta("t", states.SUCCESS, result=[1])
    worker.store(stored)
    assert client.get("t") == stored
    assert stranger.get("t") is None


def test_a_result_the_serializer_cannot_hold_fails_at_store() -> None:
    backend = MemoryBackend(f"memory://{uuid.uuid4()}", BackendOptions())
    with pytest.raises(EncodeError, match="not JSON serializable"):
        backend.store(ResultMeta("t", states.SUCCESS, result=object()))
    assert backend.get("t") is None


def test_other_urls_are_refused() -> None:
    with pytest.raises(BackendError, match="not a memory:// URL"):
        MemoryBackend("sqlite://", BackendOptions())
