"""What the conformance suite does not show: names, the dead-letter attribute, hidden delays."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from google.cloud.pubsub_v1 import SubscriberClient

from taskq.contracts import DEAD_LETTER_REASON_HEADER, QueueSpec, dead_letter_queue
from taskq_gcpubsub import naming
from taskq_gcpubsub.transport import GcpubsubTransport
from taskq_testing.factories import make_envelope, task_id_of


@pytest.fixture
def transport(pubsub_url: str) -> Iterator[GcpubsubTransport]:
    opened = GcpubsubTransport(pubsub_url, {"polling_interval": 0.05, "visibility_timeout": 30})
    opened.connect()
    yield opened
    opened.close()


@pytest.mark.parametrize(
    ("queue", "subscription"),
    [
        ("celery", "kombu-celery"),
        ("celery.pidbox", "kombu-celery-pidbox"),
        ("a:b/c@d", "kombu-a_b_c_d"),
        ("kombu-already", "kombu-already"),
        ("under_score-dash", "kombu-under_score-dash"),
    ],
)
def test_subscription_ids_are_kombus(queue: str, subscription: str) -> None:
    assert naming.entity_name(queue, "kombu-") == subscription


@pytest.mark.parametrize(
    "url",
    [
        "gcpubsub://projects/",
        "gcpubsub://project/x",
        "redis://projects/x",
        "gcpubsub://projects/a/b",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="gcpubsub"):
        GcpubsubTransport(url, {})


def test_url_names_the_project() -> None:
    assert GcpubsubTransport("gcpubsub://projects/my-proj/", {}).project == "my-proj"


def test_routing_filter_round_trips() -> None:
    for key in ("celery", 'quo"te', "back\\slash", ""):
        assert naming.routing_key_of_filter(naming.routing_filter(key)) == key
    assert naming.routing_key_of_filter("") is None
    assert naming.routing_key_of_filter('attributes.other="x"') is None


def test_dead_letter_carries_the_reason_as_an_attribute(
    transport: GcpubsubTransport, unique_name: str
) -> None:
    transport.declare_queue(QueueSpec(name=unique_name))
    transport.publish(unique_name, make_envelope(unique_name))
    [delivery] = transport.fetch([unique_name], 1, 5)
    transport.dead_letter(delivery, "no such task")
    subscriber = SubscriberClient()
    try:
        path = naming.subscription_path(
            transport.project, naming.entity_name(dead_letter_queue(unique_name), "kombu-")
        )
        response = subscriber.pull(
            request={"subscription": path, "max_messages": 10, "return_immediately": True}
        )
        [item] = response.received_messages
        assert item.message.attributes[DEAD_LETTER_REASON_HEADER] == "no such task"
    finally:
        subscriber.close()


def test_queues_get_a_dead_letter_policy_so_deliveries_are_counted(
    transport: GcpubsubTransport, unique_name: str
) -> None:
    transport.declare_queue(QueueSpec(name=unique_name))
    subscriber = SubscriberClient()
    try:
        path = naming.subscription_path(
            transport.project, naming.entity_name(unique_name, "kombu-")
        )
        found = subscriber.get_subscription(request={"subscription": path})
        assert found.dead_letter_policy.max_delivery_attempts == 100
        assert found.dead_letter_policy.dead_letter_topic.endswith(f"/topics/{unique_name}.dlq")
    finally:
        subscriber.close()


def test_purge_drops_a_delayed_message_a_fetch_has_hidden(
    transport: GcpubsubTransport, unique_name: str
) -> None:
    transport.declare_queue(QueueSpec(name=unique_name))
    eta = time.time() + 3
    transport.publish(unique_name, make_envelope(unique_name), eta=eta)
    assert transport.fetch([unique_name], 1, 0.2) == []  # hides it until its eta
    transport.purge(unique_name)
    kept = make_envelope(unique_name)
    transport.publish(unique_name, kept, eta=eta)
    while time.time() < eta + 2:
        got = transport.fetch([unique_name], 10, 0.5)
        assert all(task_id_of(d) == task_id_of(kept) for d in got), "the purged one came back"
        if got:
            transport.ack(got)
            return
    pytest.fail("the message published after the purge never came")
