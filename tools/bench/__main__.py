"""taskq benchmarks: ``uv run python tools/bench <name> [--quick]``.

- ``codec``: encode + decode of one task message, taskq beside kombu (json, msgpack).
- ``sqlite``: tasks/s through a real worker on the embedded SQLite broker, and round-trip latency.
"""

from __future__ import annotations

import argparse
import platform
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("name", choices=["codec", "sqlite"])
    parser.add_argument("--pool", default="prefork", help="the worker pool (sqlite)")
    parser.add_argument("--quick", action="store_true", help="short rounds, for a smoke run")
    options = parser.parse_args(argv)
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    if options.name == "codec":
        import codec

        print(codec.report(codec.run(seconds=0.5 if options.quick else 5.0)))
    elif options.name == "sqlite":
        import sqlite

        tasks, calls = (2_000, 100) if options.quick else (20_000, 1_000)
        print(sqlite.report(sqlite.run(tasks, calls, pool=options.pool)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
