"""From ``apply_async(...)`` to a message on the broker.

:func:`build_message` turns a call and its options into a protocol v2 :class:`TaskMessage`
with the defaults Celery's client fills in (ids, ``root_id``/``parent_id`` from the task that
is running, ``countdown`` as an ``eta``, ``expires`` as a time, time limits, links as
``embed.callbacks``). :class:`Publisher` serializes, compresses, routes and publishes it with
the retry policy, and fires ``before_task_publish``/``after_task_publish``; ``send_many``
publishes several calls in one transport call, writing a group's members from the first
member's message (:class:`_Shared`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import time
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from taskq import signals
from taskq.context import Request, current_request
from taskq.contracts import TransportError
from taskq_protocol import Embed, Envelope, TaskMessage
from taskq_protocol import Signature as WireSignature
from taskq_protocol.envelope_template import EnvelopeTemplate
from taskq_protocol.ids import uuid4_text
from taskq_protocol.message import safe_repr
from taskq_serializers import compress
from taskq_serializers import registry as serializers

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.routing import Route
    from taskq.task import Task

__all__ = [
    "build_message", "Publisher", "retry_options", "to_wire_signatures", "as_datetime",
    "collector_paused",
]  # fmt: skip

# Options that shape the message; anything else a caller passes is ignored (as kombu ignores
# publish arguments it does not know), except the ones routing reads.
_ROUTING_OPTIONS = ("queue", "exchange", "routing_key", "priority")
#: ``send_many`` pauses the garbage collector for batches of at least this many calls.
_PAUSE_GC_FROM = 64


@contextlib.contextmanager
def collector_paused() -> Generator[None, None, None]:
    """The garbage collector off for the block, then as it was (a caller's pause is kept)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def as_datetime(value: float | int | datetime | str | None, now: datetime) -> datetime | None:
    """``expires``/``eta`` as Celery accepts them: seconds from now, a datetime, or ISO text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
    return now + timedelta(seconds=float(value))


def to_wire_signatures(value: Any) -> list[WireSignature] | None:
    """``link=``/``link_error=``/``chain=`` as protocol signatures: one, a list, or None."""
    if value is None:
        return None
    items: list[Any] = [value] if isinstance(value, Mapping) else list(value)
    return [WireSignature.from_dict(dict(item)) for item in items] or None


def build_message(
    app: TaskQ,
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
    task: Task[Any, Any] | None = None,
    route: Route | None = None,
) -> TaskMessage:
    """The protocol v2 message for one call. ``options`` are ``apply_async``'s."""
    get = options.get
    parent = current_request()
    countdown = get("countdown")
    eta_option = get("eta")
    expires = get("expires", task.expires if task is not None else None)
    # The clock is only read when a time is asked for: most calls have none.
    now = eta = None
    if countdown is not None or eta_option is not None or expires is not None:
        now = datetime.now(timezone.utc)
        eta = as_datetime(eta_option, now)
        if countdown is not None:
            eta = now + timedelta(seconds=float(countdown))
    time_limit = get("time_limit", task.time_limit if task is not None else None)
    soft_limit = get("soft_time_limit", task.soft_time_limit if task else None)
    if time_limit is None and soft_limit is None and task is None:
        time_limit, soft_limit = app.conf.task_time_limit, app.conf.task_soft_time_limit
    ignore_result = get("ignore_result")
    if ignore_result is None:
        ignore_result = (
            task.ignore_result
            if task is not None and task.ignore_result is not None
            else app.conf.task_ignore_result
        )
    root_id, parent_id = _lineage(options, parent)
    link, link_error, chain, chord = get("link"), get("link_error"), get("chain"), get("chord")
    if link is None and link_error is None and chain is None and chord is None:
        embed = Embed()
    else:
        embed = Embed(
            callbacks=to_wire_signatures(link),
            errbacks=to_wire_signatures(link_error),
            chain=to_wire_signatures(chain),
            chord=None if chord is None else WireSignature.from_dict(dict(chord)),
        )
    return TaskMessage.create(
        name,
        args,
        kwargs,
        id=get("task_id"),
        eta=eta,
        expires=as_datetime(expires, now) if now is not None else None,
        group=get("group_id"),
        group_index=get("group_index"),
        retries=int(get("retries") or 0),
        time_limit=time_limit,
        soft_time_limit=soft_limit,
        root_id=root_id,
        parent_id=parent_id,
        shadow=get("shadow"),
        origin=_origin(app),
        ignore_result=bool(ignore_result),
        replaced_task_nesting=int(get("replaced_task_nesting") or 0),
        stamps=get("stamps"),
        headers=get("headers"),
        embed=embed,
        reply_to=get("reply_to") or app.thread_oid,
        priority=route.priority if route is not None else get("priority"),
        delivery_mode=2,
        now=now,
    )


def _lineage(options: Mapping[str, Any], parent: Request | None) -> tuple[str | None, str | None]:
    """``(root_id, parent_id)`` of a call made from ``parent`` (the task running here); a
    root_id still None becomes the message's own id."""
    root_id, parent_id = options.get("root_id"), options.get("parent_id")
    if parent is not None and parent.id is not None:
        root_id = root_id or parent.root_id or parent.id
        parent_id = parent_id or parent.id
    return root_id, parent_id


@functools.cache
def _base_nodename() -> object:
    from taskq.app import TaskQ

    return TaskQ.nodename


# ``gen<pid>@<host>`` for this process, by pid: ``app.nodename`` asks the system for the host
# name on every read, the same answer each message.
_nodenames: dict[int, str] = {}


def _origin(app: TaskQ) -> str:
    """``app.nodename``, read once per process when the app class does not change it."""
    if type(app).nodename is not _base_nodename():
        return app.nodename
    pid = os.getpid()
    name = _nodenames.get(pid)
    if name is None:
        _nodenames.clear()  # a forked child's parent's entry
        name = _nodenames[pid] = app.nodename
    return name


def retry_options(
    request: Request,
    *,
    countdown: float | None,
    eta: datetime | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The options that send a task again as itself: same id, retries + 1, same links,
    chain, chord, group, limits, routing and custom headers (Celery's ``as_execution_options``)."""
    headers = {k: v for k, v in request.headers.items() if k != "x-death"}
    options: dict[str, Any] = {
        "task_id": request.id,
        "retries": request.retries + 1,
        "root_id": request.root_id,
        "parent_id": request.parent_id,
        "group_id": request.group,
        "group_index": request.group_index,
        "chord": request.chord,
        "chain": request.chain,
        "link": request.callbacks,
        "link_error": request.errbacks,
        "expires": request.expires,
        "time_limit": request.timelimit[0],
        "soft_time_limit": request.timelimit[1],
        "reply_to": request.reply_to,
        "headers": headers or None,
        "stamps": request.stamps or None,
        "priority": request.priority,
        "ignore_result": request.ignore_result,
    }
    # The queue the message came from; the routing key only equals it on direct exchanges.
    queue = request.delivery_info.get("queue") or request.delivery_info.get("routing_key")
    if queue:
        options["queue"] = queue
    if eta is not None:
        options["eta"] = eta
    else:
        options["countdown"] = countdown
    options.update(extra)
    return options


class Publisher:
    """Serializes, routes and publishes task messages for one app, with the retry policy."""

    def __init__(self, app: TaskQ) -> None:
        self.app = app

    def send(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        task: Task[Any, Any] | None = None,
    ) -> TaskMessage:
        outgoing = self._prepare(name, args, kwargs, options, task)
        outgoing.announce()
        outgoing.seal()
        self._publish([outgoing.item], outgoing.options)
        outgoing.published()
        message = outgoing.message
        assert message is not None  # _prepare builds it; only a batch's members share one
        return message

    def send_many(
        self,
        items: Sequence[tuple[str, Sequence[Any], Mapping[str, Any], Mapping[str, Any]]],
    ) -> list[str]:
        """Send ``(name, args, kwargs, options)`` calls in one ``publish_many``; returns
        their task ids.

        Each message is built, routed, serialized and signalled as :meth:`send` does (a name
        registered here brings its task's defaults). They go out in one call so a broker can
        write them in one round trip; that call has one retry policy, the first item's
        ``retry``/``retry_policy`` options over the app's (a group gives all its members the
        same options). A retried call may publish some messages twice, as a retried
        :meth:`send` may.
        """
        if len(items) < _PAUSE_GC_FROM:
            return self._send_many(items)
        # A big batch keeps every message it builds alive until it is published, and each of
        # the collector's passes walks them all again: without the pause, collection is about
        # a third of a 20,000-task group's time. Messages hold no reference cycles; anything
        # cyclic made meanwhile is collected once the collector runs again.
        with collector_paused():
            return self._send_many(items)

    def _send_many(
        self,
        items: Sequence[tuple[str, Sequence[Any], Mapping[str, Any], Mapping[str, Any]]],
    ) -> list[str]:
        batch = self._prepare_many(items)
        if not batch:
            return []
        for outgoing in batch:
            outgoing.announce()
        for outgoing in batch:
            outgoing.seal()
        self._publish([outgoing.item for outgoing in batch], batch[0].options)
        for outgoing in batch:
            outgoing.published()
        return [outgoing.task_id for outgoing in batch]

    def _prepare_many(
        self,
        items: Sequence[tuple[str, Sequence[Any], Mapping[str, Any], Mapping[str, Any]]],
    ) -> list[_Outgoing]:
        """:meth:`_prepare` for each call, but sharing what a group's members share."""
        tasks = self.app.tasks
        # A group's members are usually calls of one task with the same options but their
        # own ids: each such call reuses the message of the first (see _Shared) instead of
        # routing and building its own. Not when a router function may route by argument,
        # nor when a before_task_publish receiver may change one member's body.
        sharing = self.app.router.answers_from_names and not signals.before_task_publish.receivers
        batch: list[_Outgoing] = []
        shared: _Shared | None = None
        for name, args, kwargs, options in items:
            if shared is not None and shared.fits(name, options):
                batch.append(shared.member(args, kwargs, options))
                continue
            outgoing = self._prepare(name, args, kwargs, options, tasks.get(name))
            batch.append(outgoing)
            if sharing:
                outgoing.seal()
                shared = _Shared(args, kwargs, options, outgoing)
        return batch

    def _prepare(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        task: Task[Any, Any] | None,
    ) -> _Outgoing:
        """The routed, serialized (and compressed) envelope for one call, not yet published."""
        app = self.app
        conf = app.conf
        task_options = _task_routing_options(task)
        # A map is routed as the task it maps (Celery's ``route_name``).
        route_name = options.get("route_name") or name
        route = app.router.route(route_name, args, kwargs, options, task_options, task=task)
        if route.options:
            # What a router returns besides the queue (expires, serializer, ...) applies under
            # the caller's own options, as in Celery.
            options = {**route.options, **options}
        message = build_message(app, name, args, kwargs, options, task=task, route=route)
        headers, properties, body = message.encode()
        serializer = (
            options.get("serializer") or (task and task.serializer) or conf["task_serializer"]
        )
        compression = (
            options.get("compression") or (task and task.compression) or conf["task_compression"]
        )
        eta = message.headers.eta
        when = None
        if eta is not None:
            when = eta.timestamp()
            if when <= time.time():
                when = None
        return _Outgoing(
            name, message.id, message, body, headers, properties, route, None, when, options,
            (serializer, compression),
        )  # fmt: skip

    def _publish(
        self, items: Sequence[tuple[str, Envelope, float | None]], options: Mapping[str, Any]
    ) -> None:
        # The first attempt needs no policy: it is read (and merged) only once one fails.
        try:
            self._publish_once(items)
        except TransportError as error:
            self._publish_again(items, options, error)

    def _publish_once(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        # The transport is looked up on every attempt: a client whose first publish finds the
        # broker down connects on a later attempt, as kombu's ensure() reconnects.
        transport = self.app.transport
        if len(items) == 1:
            queue, envelope, eta = items[0]
            transport.publish(queue, envelope, eta=eta)
        else:
            transport.publish_many(items)

    def _publish_again(
        self,
        items: Sequence[tuple[str, Envelope, float | None]],
        options: Mapping[str, Any],
        error: TransportError,
    ) -> None:
        """The attempts after a failed first one (``error``), as the retry policy allows;
        the last attempt's error is raised."""
        conf = self.app.conf
        retry = options.get("retry", conf.task_publish_retry)
        policy: dict[str, Any] = {
            **conf.task_publish_retry_policy,
            **(options.get("retry_policy") or {}),
        }
        retries = int(policy.get("max_retries", 3)) if retry else 0
        if retries <= 0:
            raise error
        delay = float(policy.get("interval_start", 0))
        for attempt in range(retries):
            time.sleep(delay)
            delay = min(
                delay + float(policy.get("interval_step", 0.2)),
                float(policy.get("interval_max", 1)),
            )
            try:
                self._publish_once(items)
                return
            except TransportError:
                if attempt + 1 >= retries:
                    raise


class _Outgoing:
    """One call made ready to publish, with what its publish signals report."""

    # A plain slotted class: a frozen dataclass sets each field through object.__setattr__,
    # a cost every message pays.
    __slots__ = (
        "body", "encoding", "envelope", "headers", "message", "name", "options", "properties",
        "route", "task_id", "when",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        task_id: str,
        message: TaskMessage | None,
        body: list[Any],
        headers: dict[str, Any],
        properties: dict[str, Any],
        route: Route,
        envelope: Envelope | None,
        when: float | None,
        options: Mapping[str, Any],
        encoding: tuple[str, str | None],
    ) -> None:
        self.name = name
        self.task_id = task_id
        #: The protocol model; None for a batch member written from another's (_Shared).
        self.message = message
        self.body = body
        self.headers = headers
        self.properties = properties
        self.route = route
        #: What goes on the wire, made by :meth:`seal`.
        self.envelope = envelope
        self.when = when
        self.options = options
        #: ``(serializer, compression)`` the body is written with.
        self.encoding = encoding

    @property
    def item(self) -> tuple[str, Envelope, float | None]:
        """What ``Transport.publish_many`` takes: the queue, the envelope, the eta."""
        envelope = self.envelope
        assert envelope is not None, "sealed before it is published"
        return (self.route.queue, envelope, self.when)

    def seal(self) -> None:
        """Serialize (and compress) the body and make the envelope, once. Called after
        ``before_task_publish``, as Celery's publish serializes after it: what a receiver adds
        to the headers (a tracing context, say), the properties or the body is sent."""
        if self.envelope is not None:
            return
        serializer, compression = self.encoding
        content_type, content_encoding, payload = serializers.dumps(self.body, serializer)
        if compression:
            payload, self.headers["compression"] = compress(payload, compression)
        self.wrap(payload, content_type, content_encoding)

    def wrap(self, payload: bytes, content_type: str, content_encoding: str) -> None:
        """Make the envelope of an already serialized (and compressed) body."""
        properties = self.properties
        self.envelope = Envelope.create(
            payload,
            content_type=content_type,
            content_encoding=content_encoding,
            headers=self.headers,
            properties=properties,
            exchange=self.route.exchange,
            routing_key=self.route.routing_key,
            priority=properties.get("priority"),
        )

    def announce(self) -> None:
        route = self.route
        signals.before_task_publish.send(
            sender=self.name,
            body=self.body,
            exchange=route.exchange,
            routing_key=route.routing_key,
            headers=self.headers,
            properties=self.properties,
            declare=[route.spec],
            retry_policy=self.options.get("retry_policy"),
        )

    def published(self) -> None:
        route = self.route
        signals.after_task_publish.send(
            sender=self.name,
            body=self.body,
            exchange=route.exchange,
            routing_key=route.routing_key,
            headers=self.headers,
        )


#: The options a group or a chord's header gives each member its own value of.
_MEMBER_OPTIONS = frozenset(("task_id", "group_index"))
#: The header and property values a member's envelope has of its own (see _Shared.member).
_MEMBER_HEADERS = ("id", "root_id", "group_index", "argsrepr", "kwargsrepr")
_MEMBER_PROPERTIES = ("correlation_id", "delivery_tag")
#: What a mapping lookup returns for a key it lacks (never an option or argument value).
_MISSING = object()


class _Shared:
    """The message of a batch's call, for the calls after it that differ only in their
    arguments and member options (``task_id``, ``group_index``): a group's members.

    Such a member's message is the first's with its own id (``id``, ``correlation_id``, a
    defaulted ``root_id``), ``group_index``, arguments and delivery tag: the same route, time
    limits, eta, links and headers, which are therefore not worked out again. Arguments that
    are the first's own objects (a group of clones) reuse its body and reprs as well. Their
    envelopes' JSON is written from a template of the first's (:class:`EnvelopeTemplate`).
    """

    __slots__ = ("_template", "_template_tried", "args", "first", "kwargs", "options", "root_id")

    def __init__(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        first: _Outgoing,
    ) -> None:
        self.args = args
        self.kwargs = kwargs
        self.options = options
        self.first = first
        self.root_id, _ = _lineage(options, current_request())
        #: Made for the second call (a batch of one never needs it); None if it cannot be.
        self._template: EnvelopeTemplate | None = None
        self._template_tried = False

    def fits(self, name: str, options: Mapping[str, Any]) -> bool:
        """Whether a call of ``name`` with ``options`` differs from the first only by member."""
        shared = self.options
        if name != self.first.name or len(options) != len(shared):
            return False
        try:
            for key, value in options.items():
                if key in _MEMBER_OPTIONS:
                    continue
                other = shared.get(key, _MISSING)
                if value is not other and value != other:
                    return False
        except Exception:  # an option whose == raises: it cannot be compared, so not shared
            return False
        return True

    def member(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
    ) -> _Outgoing:
        """The message of a call that :meth:`fits`."""
        first = self.first
        task_id: str = options.get("task_id") or uuid4_text()
        headers = first.headers.copy()
        headers["id"] = task_id
        headers["root_id"] = self.root_id or task_id
        headers["group_index"] = options.get("group_index")
        properties = first.properties.copy()
        properties["correlation_id"] = task_id
        same = _same_arguments(args, kwargs, self.args, self.kwargs)
        body = first.body
        if not same:
            kwargs = dict(kwargs)
            headers["argsrepr"] = safe_repr(tuple(args))
            headers["kwargsrepr"] = safe_repr(kwargs)
            body = [list(args), kwargs, body[2]]
        member = _Outgoing(
            first.name, task_id, None, body, headers, properties, first.route, None, first.when,
            first.options, first.encoding,
        )  # fmt: skip
        envelope = first.envelope
        assert envelope is not None, "the first is sealed before its members are made"
        if same:  # the first's body, already serialized
            member.wrap(envelope.body, envelope.content_type, envelope.content_encoding)
        else:
            member.seal()
        if not self._template_tried:
            self._template_tried = True
            with contextlib.suppress(ValueError):  # an odd first: its members write their own
                self._template = EnvelopeTemplate(envelope, _MEMBER_HEADERS, _MEMBER_PROPERTIES)
        if member.envelope is not None:
            member.envelope.template = self._template
        return member


def _same_arguments(
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    first_args: Sequence[Any],
    first_kwargs: Mapping[str, Any],
) -> bool:
    """Whether a call's arguments are the first's own objects (never compared with ``==``:
    an argument's ``==`` may be costly, or raise, as a numpy array's does)."""
    if len(args) != len(first_args) or len(kwargs) != len(first_kwargs):
        return False
    # Without a generator when there is nothing to compare: the usual group of clones.
    return (
        not args or args is first_args or all(a is b for a, b in zip(args, first_args, strict=True))
    ) and (
        not kwargs
        or kwargs is first_kwargs
        or all(first_kwargs.get(key, _MISSING) is value for key, value in kwargs.items())
    )


def _task_routing_options(task: Task[Any, Any] | None) -> dict[str, Any]:
    if task is None:
        return {}
    return {k: getattr(task, k) for k in _ROUTING_OPTIONS if getattr(task, k, None) is not None}
