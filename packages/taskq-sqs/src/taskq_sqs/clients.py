"""The boto3 SQS clients a transport talks through.

One client serves every queue, with the URL's credentials (or boto3's usual chain: the
environment, ``~/.aws``, an instance role). A queue listed in ``predefined_queues`` with its
own keys or region gets a client of its own, as in kombu. With ``sts_role_arn`` set, clients
use credentials from STS AssumeRole, fetched again ``sts_token_buffer_time`` seconds before
they expire (kombu does this for predefined queues only; here it applies to every client).

boto3 ships no type information, so the clients are ``Any`` and stay inside this package.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from taskq_sqs.options import SqsOptions
from taskq_sqs.sdk import assume_role, default_region, new_client

__all__ = ["Clients"]

#: kombu's region when neither the options nor boto3's configuration name one.
DEFAULT_REGION = "us-east-1"


class Clients:
    """Builds and caches clients: ``for_queue(sqs_name)`` picks the right one."""

    def __init__(self, options: SqsOptions) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._default: Any = None
        self._predefined: dict[str, Any] = {}
        self._sts_expiry: datetime | None = None

    @property
    def region(self) -> str:
        return self._options.region or default_region() or DEFAULT_REGION

    def default(self) -> Any:
        return self.for_queue(None)

    def for_queue(self, sqs_name: str | None) -> Any:
        opts = self._options
        with self._lock:
            if opts.sts_role_arn and self._sts_expired():
                self._default = None
                self._predefined.clear()
            predefined = opts.predefined_queues.get(sqs_name) if sqs_name else None
            if predefined is not None and (
                predefined.access_key_id or predefined.region or opts.sts_role_arn
            ):
                assert sqs_name is not None
                client = self._predefined.get(sqs_name)
                if client is None:
                    client = self._predefined[sqs_name] = self._new(
                        predefined.region or self.region,
                        predefined.access_key_id or opts.access_key_id,
                        predefined.secret_access_key or opts.secret_access_key,
                    )
                return client
            if self._default is None:
                self._default = self._new(self.region, opts.access_key_id, opts.secret_access_key)
            return self._default

    def _sts_expired(self) -> bool:
        expiry = self._sts_expiry
        return expiry is None or expiry <= datetime.now(timezone.utc)

    def _new(self, region: str, key: str | None, secret: str | None) -> Any:
        opts = self._options
        token: str | None = None
        if opts.sts_role_arn:
            key, secret, token = self._assume_role()
        kwargs: dict[str, Any] = {"use_ssl": opts.is_secure if opts.is_secure is not None else True}
        if opts.endpoint_url:
            kwargs["endpoint_url"] = opts.endpoint_url
        return new_client(
            "sqs",
            region=region,
            key=key,
            secret=secret,
            token=token,
            config=dict(opts.client_config),
            **kwargs,
        )

    def _assume_role(self) -> tuple[str, str, str]:
        opts = self._options
        assert opts.sts_role_arn is not None
        credentials = assume_role(opts.sts_role_arn, opts.sts_token_timeout, "taskq")
        expiry: datetime = credentials["Expiration"]
        if 0 < opts.sts_token_buffer_time < opts.sts_token_timeout:
            expiry -= timedelta(seconds=opts.sts_token_buffer_time)
        self._sts_expiry = expiry
        return (
            str(credentials["AccessKeyId"]),
            str(credentials["SecretAccessKey"]),
            str(credentials["SessionToken"]),
        )
