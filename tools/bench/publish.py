"""The client's own cost per call: ``delay()``, a group's ``send_many``, and ``get()``.

What a caller pays before and after the worker's part of a round trip, measured in one process:

- ``delay()`` on the in-memory broker (``memory://``): building, serializing and enveloping the
  message, with no network at all;
- ``delay()`` and ``send_many`` (a group of ``--tasks`` in one pipeline) on Redis;
- ``get()`` of a result already stored (the subscribe-and-read a ``get()`` does, without the
  wait for a worker);
- the stages of one message: routing, building, serializing, writing the envelope;
- a canvas group's ``apply_async()`` on Redis, per member, whole and stage by stage: the
  members' signatures made, planned (as frozen copies, without copying them), each message
  built, the envelopes' JSON (a member's written from its template of the first's), the one
  pipeline.

It writes to a queue and result keys of its own (random names, deleted at the end); it never
flushes the database. Run: ``uv run python tools/bench publish [--url redis://...] [--quick]``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from taskq import TaskQ, group
from taskq.calling import build_message, collector_paused
from taskq.canvas.sending import Plan
from taskq.task import Task
from taskq_protocol import ResultMeta, states
from taskq_serializers import registry

DEFAULT_URL = "redis://localhost:6379/14"


@dataclass
class Figures:
    """Microseconds per call (per item for ``send_many``), by measurement."""

    per_call_us: dict[str, float] = field(default_factory=dict[str, float])
    calls: int = 0


def _per_call(action: Callable[[], object], calls: int) -> float:
    """The best of three rounds of ``calls`` calls, in microseconds per call."""
    action()  # connects, fills caches
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            action()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


def _app(broker: str, backend: str | None, queue: str) -> TaskQ:
    app = TaskQ("bench_publish", broker=broker, backend=backend)
    app.conf.task_default_queue = queue
    return app


def run(url: str, calls: int, group: int) -> Figures:
    figures = Figures(calls=calls)
    queue = f"bench.publish.{uuid.uuid4().hex}"
    per = figures.per_call_us

    memory = _app(f"memory://{queue}", None, queue)

    @memory.task(ignore_result=True, name="bench.publish.noop")
    def noop_here() -> None: ...

    @memory.task(ignore_result=True, name="bench.publish.add")
    def add_here(x: int, y: int) -> None: ...

    per["delay() on memory://, no arguments"] = _per_call(noop_here.delay, calls)
    per["delay(1, 2) on memory://"] = _per_call(lambda: add_here.delay(1, 2), calls)
    memory.transport.purge(queue)

    task, app = noop_here, memory
    route = app.router.route(task.name, (), {}, {}, {}, task=task)
    per["  routing"] = _per_call(lambda: app.router.route(task.name, (), {}, {}, {}), calls)
    per["  building the message"] = _per_call(
        lambda: build_message(app, task.name, (), {}, {}, task=task, route=route), calls
    )
    message = build_message(app, task.name, (), {}, {}, task=task, route=route)
    per["  headers and body"] = _per_call(message.encode, calls)
    body = message.encode()[2]
    per["  serializing the body"] = _per_call(lambda: registry.dumps(body, "json"), calls)
    outgoing = app.publisher._prepare(task.name, (), {}, {}, task)  # pyright: ignore[reportPrivateUsage]
    outgoing.seal()
    _, envelope, _ = outgoing.item
    per["  the envelope's bytes"] = _per_call(envelope.encode, calls)
    memory.close()

    remote = _app(url, url, queue)

    @remote.task(ignore_result=True, name="bench.publish.noop")
    def noop() -> None: ...

    try:
        per["delay() on Redis"] = _per_call(noop.delay, calls)
        remote.transport.purge(queue)
        item = (noop.name, (), {}, {})
        per[f"send_many of {group:,} on Redis, per task"] = (
            _per_call(lambda: remote.publisher.send_many([item] * group), 1) / group
        )
        remote.transport.purge(queue)
        stored = str(uuid.uuid4())
        backend = remote.backend
        backend.store(ResultMeta(stored, status=states.SUCCESS, result=42))
        per["get() of a stored result on Redis"] = _per_call(
            lambda: remote.AsyncResult(stored).get(timeout=10), calls
        )
        backend.forget(stored)
        per.update(_group_stages(remote, noop, queue, group))
    finally:
        remote.transport.purge(queue)
        remote.close()
    return figures


def _group_stages(app: TaskQ, task: Task[[], None], queue: str, members: int) -> dict[str, float]:
    """A group of ``members`` sent with ``group(...).apply_async()``, per member: the whole
    call, then the same work stage by stage (best of three rounds each)."""
    name = f"a canvas group of {members:,} on Redis, per member"
    best: dict[str, float] = {}

    def keep(stage: str, started: float) -> float:
        now = time.perf_counter()
        spent = (now - started) / members * 1e6
        best[stage] = min(best.get(stage, float("inf")), spent)
        return now

    publisher = app.publisher
    with collector_paused():  # as send_many pauses it: the stages then add up to the whole
        for _ in range(3):
            started = time.perf_counter()
            group(task.s() for _ in range(members)).apply_async()
            keep(name, started)
            app.transport.purge(queue)

            started = time.perf_counter()
            whole = group(task.s() for _ in range(members))
            members_in = list(whole.flattened(copy_plain=False))
            started = keep("  signatures made", started)
            plan = Plan(app)
            whole.plan_members(plan, members_in)
            started = keep("  planned (frozen copies' calls)", started)
            outgoing = publisher._prepare_many(plan._calls)  # pyright: ignore[reportPrivateUsage]
            for each in outgoing:
                each.seal()
            started = keep("  messages built, routed, serialized", started)
            for each in outgoing:
                each.item[1].encode()
            started = keep("  the envelopes' JSON", started)
            app.transport.publish_many([each.item for each in outgoing])
            keep("  publish_many (the JSON again, and the pipeline)", started)
            app.transport.purge(queue)
    return best


def report(figures: Figures) -> str:
    lines = [f"client cost per call (best of 3 rounds of {figures.calls:,} calls)"]
    lines += [f"  {name:<48} {us:9.1f} us" for name, us in figures.per_call_us.items()]
    return "\n".join(lines)
