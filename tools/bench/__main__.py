"""taskq benchmarks: ``uv run python tools/bench <name> [--quick]``.

- ``codec``: encode + decode of one task message, taskq beside kombu (json, msgpack).
- ``sqlite``: tasks/s through a real worker on the embedded SQLite broker, and round-trip latency.
- ``redis``: taskq, Celery and Dramatiq side by side on one Redis (publish, consume+execute,
  round trip, worker memory), the task's own cost and what it leaves each consume target,
  then taskq alone on a million tasks.
- ``amqp``: the same three side by side with RabbitMQ as the broker (results on Redis).
- ``worker``: the worker's own cost per task on the in-process memory:// broker, per pool.
- ``canvas``: a group of 10,000 tasks and a chord of 10,000 headers, taskq beside Celery on
  one Redis, from apply to the last result.
- ``publish``: the client's own cost per ``delay()``, per task of a group's ``send_many``, per
  ``get()`` of a stored result, and per stage of building a message.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument(
        "name", choices=["codec", "sqlite", "redis", "amqp", "worker", "canvas", "publish"]
    )
    parser.add_argument("--pool", default="prefork", help="the worker pool (sqlite)")
    parser.add_argument("--quick", action="store_true", help="short rounds, for a smoke run")
    parser.add_argument(
        "--tasks", type=int, help="tasks per throughput round (redis), per group and chord (canvas)"
    )
    parser.add_argument(
        "--million", action="store_true", help="always run taskq on 1,000,000 tasks (redis)"
    )
    parser.add_argument(
        "--url",
        help="a Redis database it may flush (redis, amqp, canvas; default $REDIS_URL, else db 15)",
    )
    parser.add_argument(
        "--broker",
        help="the RabbitMQ to use (amqp; default $AMQP_URL, else amqp://guest:guest@localhost//)",
    )
    options = parser.parse_args(argv)
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    if options.name == "codec":
        import codec

        print(codec.report(codec.run(seconds=0.5 if options.quick else 5.0)))
    elif options.name == "sqlite":
        import sqlite

        tasks, calls = (2_000, 100) if options.quick else (20_000, 1_000)
        print(sqlite.report(sqlite.run(tasks, calls, pool=options.pool)))
    elif options.name in ("redis", "amqp"):
        import broker_compare

        tasks, calls = (1_000, 100) if options.quick else (20_000, 1_000)
        url = options.url or os.environ.get("REDIS_URL") or broker_compare.DEFAULT_URL
        million = True if options.million else (False if options.quick else None)
        broker = None
        if options.name == "amqp":
            broker = options.broker or os.environ.get("AMQP_URL") or broker_compare.DEFAULT_AMQP
        try:
            result = broker_compare.run(
                url, options.tasks or tasks, calls, million=million, broker_url=broker
            )
        except broker_compare.ForeignDatabase as exc:
            print(f"tools/bench {options.name}: {exc}", file=sys.stderr)
            return 2
        print(broker_compare.report(result))
        return 1 if broker_compare.failed(result) else 0
    elif options.name == "worker":
        import worker_overhead

        print(worker_overhead.report(worker_overhead.run(5_000 if options.quick else 50_000)))
    elif options.name == "canvas":
        import canvas_compare

        size, repeats = (500, 1) if options.quick else (10_000, 3)
        url = options.url or os.environ.get("REDIS_URL") or canvas_compare.DEFAULT_URL
        try:
            outcome = canvas_compare.run(url, options.tasks or size, repeats)
        except canvas_compare.ForeignDatabase as exc:
            print(f"tools/bench canvas: {exc}", file=sys.stderr)
            return 2
        print(canvas_compare.report(outcome))
        return 1 if canvas_compare.failed(outcome) else 0
    elif options.name == "publish":
        import publish

        calls, group = (2_000, 2_000) if options.quick else (20_000, 20_000)
        url = options.url or os.environ.get("REDIS_URL") or publish.DEFAULT_URL
        print(publish.report(publish.run(url, calls, options.tasks or group)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
