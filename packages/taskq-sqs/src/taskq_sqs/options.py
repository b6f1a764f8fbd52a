"""``sqs://`` URLs and ``broker_transport_options``, read under kombu's names.

Celery users move their settings over unchanged: ``sqs://`` (credentials from boto3's usual
chain), ``sqs://KEY:SECRET@`` and ``sqs://KEY:SECRET@host:port`` (an endpoint such as moto or
ElasticMQ; plain HTTP unless ``is_secure`` is true, as kombu builds it). Options another
broker uses are ignored; a known option with a wrong value fails at once, naming it.

taskq adds three options of its own, all off kombu's path:

- ``endpoint_url``: an explicit endpoint (kombu ignores this key; here it wins over the URL's
  host).
- ``max_delay_seconds``: the longest per-message delay SQS is asked for (900, SQS's limit).
  A message due later is sent with this delay and sent again, with the rest of its delay,
  each time it surfaces early. Tests lower it to avoid waiting 15 minutes.
- ``max_receive_count``: when set, ``declare_queue`` gives each queue a RedrivePolicy to its
  ``<queue>.dlq`` with this maxReceiveCount (a queue that already has one keeps it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from taskq.exceptions import ImproperlyConfigured
from taskq.options import read_bool
from taskq.transports.options import BROKER_OPTIONS

__all__ = ["SqsOptions", "PredefinedQueue", "SQS_MAX_DELAY", "SQS_MAX_VISIBILITY"]

#: SQS's limits: per-message delay and visibility timeout, in seconds.
SQS_MAX_DELAY = 900
SQS_MAX_VISIBILITY = 43200
_SCHEMES = ("sqs",)


@dataclass(frozen=True, slots=True)
class PredefinedQueue:
    """One entry of kombu's ``predefined_queues``: an existing queue and its own credentials."""

    url: str
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class SqsOptions:
    access_key_id: str | None = None
    secret_access_key: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    is_secure: bool | None = None
    queue_name_prefix: str = ""
    #: kombu's default: 30 minutes (whole seconds: SQS counts nothing finer).
    visibility_timeout: int = 1800
    wait_time_seconds: int = 10
    polling_interval: float = 1.0
    predefined_queues: Mapping[str, PredefinedQueue] = field(
        default_factory=dict[str, PredefinedQueue]
    )
    sts_role_arn: str | None = None
    sts_token_timeout: int = 900
    sts_token_buffer_time: int = 0
    client_config: Mapping[str, Any] = field(default_factory=dict[str, Any])
    creation_attributes: Mapping[str, str] = field(default_factory=dict[str, str])
    queue_tags: Mapping[str, str] = field(default_factory=dict[str, str])
    max_delay_seconds: int = SQS_MAX_DELAY
    max_receive_count: int | None = None

    @classmethod
    def read(cls, url: str, options: Mapping[str, Any]) -> SqsOptions:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise ImproperlyConfigured("broker_url", f"not an sqs:// URL: {url!r}")
        secure = options.get("is_secure")
        is_secure = (
            None if secure is None else read_bool(secure, setting=BROKER_OPTIONS, name="is_secure")
        )
        endpoint = _str(options, "endpoint_url")
        if endpoint is None and parts.hostname:
            # kombu: http unless is_secure is true, the port only when the URL has one.
            scheme = "https" if is_secure else "http"
            port = f":{parts.port}" if parts.port is not None else ""
            endpoint = f"{scheme}://{parts.hostname}{port}"
        return cls(
            access_key_id=unquote(parts.username) if parts.username else None,
            secret_access_key=unquote(parts.password) if parts.password else None,
            endpoint_url=endpoint,
            region=_str(options, "region"),
            is_secure=is_secure,
            queue_name_prefix=_str(options, "queue_name_prefix") or "",
            visibility_timeout=_whole(options, "visibility_timeout", 1800, 0, SQS_MAX_VISIBILITY),
            wait_time_seconds=_whole(options, "wait_time_seconds", 10, 0, 20),
            polling_interval=_seconds(options, "polling_interval", 1.0),
            predefined_queues=_predefined(options.get("predefined_queues")),
            sts_role_arn=_str(options, "sts_role_arn"),
            sts_token_timeout=_whole(options, "sts_token_timeout", 900, 900, 43200),
            sts_token_buffer_time=_whole(options, "sts_token_buffer_time", 0, 0, 43200),
            client_config=_mapping(options, "client-config"),
            creation_attributes={
                str(k): str(v) for k, v in _mapping(options, "sqs-creation-attributes").items()
            },
            queue_tags={str(k): str(v) for k, v in _mapping(options, "queue_tags").items()},
            max_delay_seconds=_whole(options, "max_delay_seconds", SQS_MAX_DELAY, 1, SQS_MAX_DELAY),
            max_receive_count=_optional_whole(options, "max_receive_count", 1, 1000),
        )


def _fail(key: str, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(BROKER_OPTIONS, f"{key} {problem}")


def _str(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _fail(key, f"must be a string, got {value!r}")
    return value


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _whole(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = options.get(key)
    if value is None or value == "":
        return default
    number = _number(value)
    if number is None or not low <= number <= high:
        raise _fail(key, f"must be a number of seconds from {low} to {high}, got {value!r}")
    # SQS takes whole seconds; kombu truncates (int(float(x))).
    return int(number)


def _optional_whole(options: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    if options.get(key) is None:
        return None
    return _whole(options, key, low, low, high)


def _seconds(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key)
    if value is None:
        return default
    number = _number(value)
    if number is None or number < 0:
        raise _fail(key, f"must be a number of seconds >= 0, got {value!r}")
    return number


def _mapping(options: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = options.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(key, f"must be a mapping, got {value!r}")
    return dict(value)  # pyright: ignore[reportUnknownArgumentType]


def _predefined(value: object) -> dict[str, PredefinedQueue]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail("predefined_queues", f"must map queue names to settings, got {value!r}")
    found: dict[str, PredefinedQueue] = {}
    entries = cast(Mapping[Any, Any], value)
    for name, entry in entries.items():
        settings: Mapping[str, Any] = cast(
            Mapping[str, Any], entry if isinstance(entry, Mapping) else {}
        )
        if not isinstance(settings.get("url"), str):
            raise _fail("predefined_queues", f"entry {name!r} needs a 'url'")
        url = str(settings["url"])
        # kombu's rule: a FIFO queue's name and URL both end in .fifo, or neither does.
        if str(name).endswith(".fifo") != url.endswith(".fifo"):
            raise _fail("predefined_queues", f"{name!r} and its url {url!r} disagree on .fifo")
        found[str(name)] = PredefinedQueue(
            url=url,
            access_key_id=_optional_text(settings.get("access_key_id")),
            secret_access_key=_optional_text(settings.get("secret_access_key")),
            region=_optional_text(settings.get("region")),
        )
    return found


def _optional_text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)
