"""One task message in the worker, from receipt until its delivery is settled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskq.contracts import Delivery
from taskq_protocol import TaskMessage
from taskq_worker.decoding import Received, Undeliverable

__all__ = ["Policy", "Job"]


@dataclass(frozen=True, slots=True)
class Policy:
    """How one task type's messages are acknowledged and limited, worked out once per type
    from the task's options over the app's settings and the worker's arguments."""

    acks_late: bool
    acks_on_failure_or_timeout: bool
    reject_on_worker_lost: bool
    time_limit: float | None
    soft_time_limit: float | None
    #: Exceptions the task declares it raises: logged without a traceback.
    throws: tuple[type[BaseException], ...] = ()


@dataclass(slots=True, eq=False)
class Job:
    delivery: Delivery
    received: Received
    policy: Policy
    #: Unix time of receipt, and of the start in the pool (None while waiting).
    received_at: float
    started: float | None = None
    #: The delivery was acknowledged (early ack) and must not be settled again.
    acked: bool = False
    #: The signal ``revoke(terminate=True)`` sent to stop it, for the REVOKED record.
    terminate_signal: int | None = None
    #: Why the pool was asked to take it back before it starts: "revoked" (a plain revoke)
    #: or "shutdown" (a warm shutdown gives the unstarted back to the broker).
    withdrawn: str | None = None
    delivery_info: dict[str, Any] = field(default_factory=dict[str, Any])

    @property
    def id(self) -> str:
        return self.received.id

    @property
    def name(self) -> str:
        return self.received.name

    @property
    def message(self) -> TaskMessage:
        """The whole message (built on first use); :class:`Undeliverable` if it cannot be."""
        return self.received.message

    def limits(self) -> tuple[float | None, float | None]:
        """``(hard, soft)`` for this run: the message's ``timelimit`` header, else the task's
        or the worker's (Celery's order)."""
        hard, soft = self.received.timelimit
        policy = self.policy
        return (
            hard if hard is not None else policy.time_limit,
            soft if soft is not None else policy.soft_time_limit,
        )

    def info(self, hostname: str) -> dict[str, Any]:
        """What ``inspect active`` and ``inspect reserved`` show, in Celery's keys."""
        args: list[Any]
        kwargs: dict[str, Any]
        try:
            args, kwargs = list(self.message.args), dict(self.message.kwargs)
        except Undeliverable:  # it is dead-lettered when it runs; show what the sender said
            args, kwargs = [self.received.argsrepr], {}
        return {
            "id": self.id,
            "name": self.name,
            "args": args,
            "kwargs": kwargs,
            "type": self.name,
            "hostname": hostname,
            "time_start": self.started,
            "acknowledged": self.acked,
            "delivery_info": dict(self.delivery_info),
        }
