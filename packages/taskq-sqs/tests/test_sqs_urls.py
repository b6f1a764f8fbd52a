"""sqs:// URLs and broker_transport_options read as kombu reads them (no server needed)."""

from __future__ import annotations

import pytest

from taskq.exceptions import ImproperlyConfigured
from taskq_sqs.names import sqs_queue_name
from taskq_sqs.options import SqsOptions


def test_sqs_url_without_host_uses_aws() -> None:
    options = SqsOptions.read("sqs://", {})
    assert options.endpoint_url is None
    assert options.access_key_id is None
    assert (options.visibility_timeout, options.wait_time_seconds) == (1800, 10)


def test_sqs_url_credentials_are_unquoted() -> None:
    options = SqsOptions.read("sqs://AKIA:se%2Fcret@", {"region": "eu-west-1"})
    assert (options.access_key_id, options.secret_access_key) == ("AKIA", "se/cret")
    assert options.region == "eu-west-1"
    assert options.endpoint_url is None


@pytest.mark.parametrize(
    ("url", "extra", "endpoint"),
    [
        ("sqs://k:s@127.0.0.1:4566", {}, "http://127.0.0.1:4566"),
        ("sqs://k:s@sqs.local", {"is_secure": True}, "https://sqs.local"),
        ("sqs://k:s@sqs.local", {"is_secure": "on"}, "https://sqs.local"),
        ("sqs://k:s@sqs.local", {"is_secure": "off"}, "http://sqs.local"),
        ("sqs://k:s@sqs.local", {"is_secure": 1}, "https://sqs.local"),
        ("sqs://k:s@127.0.0.1:4566", {"endpoint_url": "http://other:9"}, "http://other:9"),
    ],
)
def test_sqs_endpoint_as_kombu_builds_it(url: str, extra: dict[str, object], endpoint: str) -> None:
    assert SqsOptions.read(url, extra).endpoint_url == endpoint


def test_sqs_options_under_kombu_names() -> None:
    options = SqsOptions.read(
        "sqs://",
        {
            "queue_name_prefix": "prod-",
            "visibility_timeout": "3600.5",
            "wait_time_seconds": 20,
            "polling_interval": 0.3,
            "predefined_queues": {"celery": {"url": "https://sqs/1/celery", "region": "x"}},
            "unknown_option_for_redis": True,
        },
    )
    assert options.queue_name_prefix == "prod-"
    assert options.visibility_timeout == 3600
    assert options.polling_interval == 0.3
    assert options.predefined_queues["celery"].region == "x"


@pytest.mark.parametrize(
    "bad",
    [
        {"wait_time_seconds": 21},
        {"visibility_timeout": "soon"},
        {"is_secure": "maybe"},
        {"predefined_queues": {"q.fifo": {"url": "https://sqs/1/q"}}},
        {"max_delay_seconds": 901},
    ],
)
def test_sqs_wrong_options_fail_naming_the_option(bad: dict[str, object]) -> None:
    with pytest.raises(ImproperlyConfigured, match=next(iter(bad))):
        SqsOptions.read("sqs://", bad)


@pytest.mark.parametrize(
    ("queue", "prefix", "expected"),
    [
        ("celery", "", "celery"),
        ("celery.dlq", "", "celery-dlq"),
        ("a.b:c@d", "p-", "p-a-b_c_d"),
        ("orders.v2.fifo", "", "orders-v2.fifo"),
    ],
)
def test_sqs_queue_names_as_kombu_mangles_them(queue: str, prefix: str, expected: str) -> None:
    assert sqs_queue_name(queue, prefix) == expected
