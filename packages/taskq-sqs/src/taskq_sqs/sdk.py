"""boto3 and botocore, which ship no type information, behind typed names.

Everything this package takes from the AWS SDK comes through here: answers are ``Any`` and
are read with :func:`field_list` and :func:`field_dict`, so the rest stays strictly typed.
"""

from __future__ import annotations

from typing import Any

import boto3  # pyright: ignore[reportMissingTypeStubs]
from botocore.config import Config  # pyright: ignore[reportMissingTypeStubs]
from botocore.exceptions import (  # pyright: ignore[reportMissingTypeStubs]
    BotoCoreError as _BotoCoreError,
)
from botocore.exceptions import (  # pyright: ignore[reportMissingTypeStubs]
    ClientError as _ClientError,
)

__all__ = [
    "ClientError",
    "BotoCoreError",
    "error_code",
    "new_client",
    "default_region",
    "assume_role",
    "field_list",
    "field_dict",
]

#: An error answer from AWS (``error_code`` says which).
ClientError: type[Exception] = _ClientError
#: A failure before any answer (connection, credentials, bad parameters).
BotoCoreError: type[Exception] = _BotoCoreError


def error_code(exc: BaseException) -> str:
    response: Any = getattr(exc, "response", None) or {}
    error: Any = response.get("Error") or {}
    return str(error.get("Code", ""))


def new_client(
    service: str,
    *,
    region: str,
    key: str | None,
    secret: str | None,
    token: str | None,
    config: dict[str, Any],
    **kwargs: Any,
) -> Any:
    session: Any = boto3.Session(
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )
    return session.client(service, config=Config(**config), **kwargs)


def default_region() -> str | None:
    """The region boto3's own configuration names (environment, ``~/.aws/config``)."""
    session: Any = boto3.Session()
    region: Any = session.region_name
    return None if region is None else str(region)


def assume_role(role_arn: str, seconds: int, session_name: str) -> dict[str, Any]:
    """STS AssumeRole with boto3's default credentials: the ``Credentials`` answered."""
    session: Any = boto3.Session()
    sts: Any = session.client("sts")
    answer: Any = sts.assume_role(
        RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=seconds
    )
    return field_dict(answer, "Credentials")


def field_list(answer: Any, key: str) -> list[Any]:
    if not answer:
        return []
    value: Any = answer.get(key)
    return list(value) if value else []


def field_dict(answer: Any, key: str) -> dict[str, Any]:
    if not answer:
        return {}
    value: Any = answer.get(key)
    return dict(value) if value else {}
