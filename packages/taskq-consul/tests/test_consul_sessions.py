"""Session-based recovery, against the Consul EMULATOR: a consumer whose Consul session dies
(what Consul does when its TTL passes unrenewed: the worker is gone) loses its deliveries to the
others long before their visibility timeout."""

from __future__ import annotations

import pytest
from consul_emulator import ConsulEmulator

from taskq.contracts import QueueSpec
from taskq_consul.transport import ConsulHandle, ConsulTransport
from taskq_testing.factories import make_envelope, task_id_of

pytestmark = pytest.mark.consul_emulator


def test_a_dead_sessions_delivery_returns_before_its_visibility_timeout(
    consul_emulator: ConsulEmulator, unique_name: str
) -> None:
    options = {"visibility_timeout": 3600}
    dead = ConsulTransport(consul_emulator.url, options)
    alive = ConsulTransport(consul_emulator.url, options)
    dead.connect()
    alive.connect()
    try:
        dead.declare_queue(QueueSpec(name=unique_name))
        envelope = make_envelope(unique_name)
        dead.publish(unique_name, envelope)
        [delivery] = dead.fetch([unique_name], 1, 10.0)
        assert isinstance(delivery.handle, ConsulHandle)
        assert alive.fetch([unique_name], 1, 0.2) == []
        consul_emulator.invalidate_session(delivery.handle.session)
        [again] = alive.fetch([unique_name], 1, 30.0)
        assert task_id_of(again) == task_id_of(envelope)
        assert again.deliveries == 2
        assert again.redelivered
        # The dead consumer's late ack touches nothing that is no longer its own.
        dead.ack([delivery])
        alive.ack([again])
        assert alive.queue_length(unique_name) == 0
    finally:
        alive.close()
        dead.close()


def test_a_message_over_consuls_value_limit_is_refused(
    consul_emulator: ConsulEmulator, unique_name: str
) -> None:
    transport = ConsulTransport(consul_emulator.url, {})
    transport.connect()
    try:
        with pytest.raises(ValueError, match="too large"):
            transport.publish(unique_name, make_envelope(unique_name, body=b"x" * (600 * 1024)))
        assert transport.queue_length(unique_name) == 0
    finally:
        transport.close()
