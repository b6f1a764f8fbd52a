"""boto3's errors as the contract's :class:`~taskq.contracts.TransportError`."""

from __future__ import annotations

import contextlib
from collections.abc import Generator

from taskq.contracts import TransportError
from taskq_sqs.sdk import BotoCoreError, ClientError, error_code

__all__ = ["sqs_errors", "error_code", "NO_QUEUE_CODES", "STALE_RECEIPT_CODES"]

#: What SQS answers for a queue that does not exist (query and JSON protocol spellings).
NO_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
#: What SQS answers for a receipt handle that no longer holds the message.
STALE_RECEIPT_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "InvalidParameterValue",
        "AWS.SimpleQueueService.MessageNotInflight",
        "MessageNotInflight",
    }
)


@contextlib.contextmanager
def sqs_errors(action: str) -> Generator[None, None, None]:
    try:
        yield
    except ClientError as exc:
        raise TransportError(f"SQS {action} failed: {exc}") from exc
    except (BotoCoreError, OSError) as exc:
        raise TransportError(f"SQS {action} failed: {exc}") from exc
