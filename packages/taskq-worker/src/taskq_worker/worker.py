"""``Worker``: start, consume until told to stop, shut down cleanly. What ``taskq worker`` runs.

Start: validate the configuration, import the task modules, reach the broker (with retries),
print the banner, start the pool, then consume on the calling thread. Any failure before
consuming ends :meth:`Worker.start` with exit code 1 and one line naming the setting or the
URL at fault (the traceback too at ``DEBUG``).

Stop: the first SIGTERM or SIGINT (or :meth:`Worker.stop`) is a *warm* shutdown: fetch
nothing more, let running tasks finish and settle them, give prefetched messages back to the
broker, exit 0. A second one (or SIGQUIT, or ``stop(cold=True)``) is *cold*: running tasks are
killed and, since their messages were not acknowledged, delivered again; exit 1.
"""

from __future__ import annotations

import itertools
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from taskq import plugins, signals
from taskq.contracts import Pool, QueueSpec, Transport, TransportError
from taskq.control import pidbox_exchange, reply_exchange
from taskq.exceptions import ImproperlyConfigured, PluginNotFound, QueueNotFound
from taskq.rates import parse_rate
from taskq_worker import target
from taskq_worker.banner import banner
from taskq_worker.connection import BrokerUnavailable, open_transport
from taskq_worker.consumer import Consumer
from taskq_worker.control import RemoteControl
from taskq_worker.fetcher import Fetcher, Holdings
from taskq_worker.log import parse_level, setup_logging
from taskq_worker.naming import node_name
from taskq_worker.settings import WorkerSettings, resolve

if TYPE_CHECKING:
    from taskq.app import TaskQ

__all__ = ["Worker"]

logger = logging.getLogger(__name__)

_keys = itertools.count(1)

#: Errors that mean "this worker cannot start as configured": one line, exit code 1.
_STARTUP_ERRORS = (
    ImproperlyConfigured,
    PluginNotFound,
    QueueNotFound,
    BrokerUnavailable,
    TransportError,
    ImportError,
)


class ColdShutdown(BaseException):
    """Raised in the main thread by a cold-shutdown signal to abandon an inline task (the solo
    pool runs tasks on the consumer thread, which no flag can interrupt)."""


class Worker:
    """One worker node. Arguments left None come from ``app.conf`` when :meth:`start` runs."""

    def __init__(
        self,
        app: TaskQ,
        hostname: str | None = None,
        pool: str | None = None,
        concurrency: int | None = None,
        queues: Sequence[str] | str | None = None,
        exclude_queues: Sequence[str] | str | None = None,
        loglevel: str | int = "INFO",
        prefetch_multiplier: int | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        logfile: str | None = None,
        purge: bool = False,
    ) -> None:
        self.app = app
        self.hostname = node_name(hostname)
        self.loglevel = loglevel
        self.logfile = logfile
        self.purge = purge
        self._options: dict[str, Any] = {
            "pool": pool,
            "concurrency": concurrency,
            "queues": queues,
            "exclude_queues": exclude_queues,
            "prefetch_multiplier": prefetch_multiplier,
            "max_tasks_per_child": max_tasks_per_child,
            "max_memory_per_child": max_memory_per_child,
            "time_limit": time_limit,
            "soft_time_limit": soft_time_limit,
        }
        self.settings: WorkerSettings | None = None
        self.queues: list[str] = []
        self.exitcode = 0
        self._key = next(_keys)
        # Reentrant: a signal handler runs on the main thread, maybe while it holds the lock.
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._cold = False
        self._finished = False
        self._consumer: Consumer | None = None
        self._holdings: Holdings | None = None

    def __repr__(self) -> str:
        return f"<Worker {self.hostname}>"

    # -- public API --------------------------------------------------------------------------

    def start(self) -> int:
        """Run until shut down; returns the exit code (0 after a warm shutdown)."""
        debug = False
        try:
            level = parse_level(self.loglevel)
            debug = level <= logging.DEBUG
            setup_logging(level, self.logfile, self.app.conf)
        except (ImproperlyConfigured, OSError) as exc:
            print(f"taskq worker: {exc}", file=sys.stderr)  # logging is not set up
            return 1
        restore = self._install_signal_handlers()
        try:
            return self._run()
        except _STARTUP_ERRORS as exc:
            logger.critical("Cannot start worker %s: %s", self.hostname, exc, exc_info=debug)
            return 1
        except Exception:
            logger.critical("Worker %s failed", self.hostname, exc_info=True)
            return 1
        finally:
            with self._lock:
                self._finished = True
            restore()

    def stop(self, cold: bool = False) -> None:
        """Ask the worker to shut down, from any thread; ``cold`` kills running tasks."""
        with self._lock:
            if self._finished:
                return
            if self._stopping.is_set() and (self._cold or not cold):
                return  # already stopping, at least this hard
            self._stopping.set()
            self._cold = self._cold or cold
            consumer, holdings = self._consumer, self._holdings
        how = "Cold" if cold else "Warm"
        logger.warning(
            "%s shutdown (%s)",
            how,
            "running tasks are stopped" if cold else "waiting for running tasks",
        )
        signals.worker_shutting_down.send(
            sender=self.hostname, sig=None, how=how, exitcode=1 if cold else 0
        )
        if holdings is not None:
            holdings.close()
        if consumer is not None:
            consumer.stop(cold=cold)

    # -- start-up ----------------------------------------------------------------------------

    def _run(self) -> int:
        app = self.app
        settings = self.settings = resolve(app, **self._options)
        app.conf.validate()
        self._check_rate_limits()
        signals.celeryd_init.send(sender=self.hostname, instance=self, conf=app.conf)
        app.import_task_modules()
        signals.import_modules.send(sender=app)
        pool_factory = plugins.POOLS.load(settings.pool)
        specs = self._queue_specs(settings)
        self.queues = [spec.name for spec in specs]
        if app.backend_url is not None:
            app.backend  # noqa: B018 - build it now, so a bad result_backend fails at start
        transport = open_transport(app, self._stopping)
        try:
            return self._serve(transport, pool_factory, specs)
        finally:
            try:
                transport.close()
            except TransportError as exc:
                logger.error("Closing the broker connection failed: %s", exc)

    def _serve(self, transport: Transport, pool_factory: Any, specs: list[QueueSpec]) -> int:
        app, settings = self.app, self.settings
        assert settings is not None
        for spec in specs:
            transport.declare_queue(spec)
        if self.purge:
            purged = sum(transport.purge(name) for name in self.queues)
            print(f"Purged {purged} messages from {len(self.queues)} known task queues.")
        print(
            banner(
                node=self.hostname,
                version=_version(),
                app=app.main,
                broker=app.broker_url,
                results=app.backend_url,
                broker_is_default=app.broker_is_default,
                pool=settings.pool,
                concurrency=settings.concurrency,
                queues=self.queues,
                tasks=app.tasks,
            ),
            flush=True,
        )
        target.install(self._key, app, self.hostname)
        try:
            signals.worker_init.send(sender=self)
            pool: Pool = pool_factory(
                settings.concurrency,
                max_tasks_per_child=settings.max_tasks_per_child,
                max_memory_per_child=settings.max_memory_per_child,
                initializer=target.init_process,
            )
            holdings = Holdings(settings.prefetch_limit)
            consumer = Consumer(
                app,
                transport=transport,
                pool=pool,
                settings=settings,
                holdings=holdings,
                queues=self.queues,
                hostname=self.hostname,
                key=self._key,
                control=RemoteControl(
                    transport,
                    hostname=self.hostname,
                    reply_exchange=reply_exchange(app.conf.control_exchange),
                    queues=self.queues,
                    shutdown=self.stop,
                ),
            )
            consumer.start_pool()
            try:
                return self._consume(transport, pool, consumer, holdings)
            finally:
                self._stop_pool(pool)
        finally:
            target.uninstall(self._key)
            signals.worker_shutdown.send(sender=self)

    def _consume(
        self, transport: Transport, pool: Pool, consumer: Consumer, holdings: Holdings
    ) -> int:
        with self._lock:
            self._consumer, self._holdings = consumer, holdings
            stopping, cold = self._stopping.is_set(), self._cold
        if stopping:
            holdings.close()
            consumer.stop(cold=cold)
        unsubscribe: Callable[[], None] | None = None
        if self.app.conf.worker_enable_remote_control:
            unsubscribe = transport.subscribe(
                pidbox_exchange(self.app.conf.control_exchange), consumer.on_control
            )
        fetcher = Fetcher(
            transport,
            self.queues,
            holdings,
            consumer.deliver,
            visibility_timeout=_visibility_timeout(
                transport, self.app.conf.broker_transport_options
            ),
            retry=bool(self.app.conf.broker_connection_retry),
            on_failure=self._fetching_failed,
        )
        fetcher.start()
        logger.info("%s ready.", self.hostname)
        signals.worker_ready.send(sender=self)
        try:
            consumer.run()
        except ColdShutdown:
            consumer.cold = True
        except Exception:
            logger.critical("The consumer failed; stopping the worker", exc_info=True)
            self.exitcode = 1
            consumer.cold = True
        finally:
            holdings.close()
            if unsubscribe is not None:
                unsubscribe()
            fetcher.join()
        if consumer.cold:
            self._cold = True
        return 1 if self._cold else self.exitcode

    def _stop_pool(self, pool: Pool) -> None:
        try:
            pool.stop(wait=not self._cold)
        except Exception:
            logger.exception("Stopping the %s pool failed", pool.name)

    def _fetching_failed(self) -> None:
        self.exitcode = 1
        self.stop()

    def _queue_specs(self, settings: WorkerSettings) -> list[QueueSpec]:
        router = self.app.router
        try:
            specs = router.select(settings.queues) if settings.queues else router.queues()
            if settings.exclude_queues:
                specs = router.exclude(settings.exclude_queues, among=specs)
        except ValueError as exc:
            if isinstance(exc, ImproperlyConfigured):
                raise
            raise ImproperlyConfigured("queues (--queues)", str(exc)) from exc
        if not specs:
            raise ImproperlyConfigured(
                "queues (--queues / --exclude-queues)", "no queue is left to consume"
            )
        return specs

    def _check_rate_limits(self) -> None:
        """A malformed ``rate_limit`` on any task fails the start, not the task's first run."""
        for name, task in self.app.tasks.items():
            try:
                parse_rate(task.rate_limit)
            except ValueError as exc:
                raise ImproperlyConfigured(f"{name}.rate_limit", str(exc)) from None

    # -- OS signals ----------------------------------------------------------------------------

    def _install_signal_handlers(self) -> Callable[[], None]:
        """Warm shutdown on SIGTERM/SIGINT, cold on a second one or SIGQUIT; only possible
        (and only wanted) when the worker runs on the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        wanted = {signal.SIGTERM: False, signal.SIGINT: False}
        if hasattr(signal, "SIGQUIT"):
            wanted[signal.SIGQUIT] = True
        previous = {signum: signal.signal(signum, self._on_signal) for signum in wanted}

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

        return restore

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        cold = signum == getattr(signal, "SIGQUIT", None) or self._stopping.is_set()
        logger.warning("Received %s", signal.Signals(signum).name)
        self.stop(cold=cold)
        consumer = self._consumer
        if cold and consumer is not None and consumer.applying:
            raise ColdShutdown  # a task runs inline on this thread: abandon it


def _visibility_timeout(transport: Transport, options: Any) -> float:
    """How long a delivery stays invisible: the transport's own figure when it has one."""
    value = getattr(transport, "visibility_timeout", None) or options.get("visibility_timeout")
    return float(value) if isinstance(value, (int, float)) and value > 0 else 3600.0


def _version() -> str:
    from taskq_worker import __version__

    return __version__
