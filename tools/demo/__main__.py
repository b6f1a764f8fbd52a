"""The quick start: a worker on the embedded SQLite default runs a batch of example tasks.

``uv run python tools/demo`` starts ``taskq worker`` in a subprocess (prefork pool, 2 processes),
sends additions, a chain, a task that retries with backoff and a task with a countdown, prints
each result as it arrives, then stops the worker with SIGTERM (a warm shutdown).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    workdir = Path(os.environ.get("TASKQ_DEMO_DIR") or tempfile.mkdtemp(prefix="taskq-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    sys.path.insert(0, str(HERE))
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    print(f"working directory: {workdir}")
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskq_cli", "-A", "demo_tasks", "worker", "-P", "prefork",
         "-c", "2", "-l", "INFO"],
        env=env,
    )  # fmt: skip
    try:
        return run_examples()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def run_examples() -> int:
    from demo_tasks import add, flaky, multiply, roll_dice, total

    from taskq import chain

    started = time.monotonic()
    sums = [add.delay(i, i) for i in range(10)]
    pipeline = chain(add.s(2, 3), multiply.s(10), add.s(7))
    chained = pipeline.apply_async()
    retried = flaky.delay(2)
    later = roll_dice.apply_async(countdown=1)
    collected = total.delay([r.get(timeout=60) for r in sums])
    print(f"add(i, i) for i in 0..9   -> {[r.get(timeout=60) for r in sums]}")
    print(f"total of those            -> {collected.get(timeout=60)}")
    print(f"chain (2+3)*10+7          -> {chained.get(timeout=60)}")
    print(f"flaky(2), auto-retried    -> {retried.get(timeout=60)}")
    print(f"roll_dice, 1 s countdown  -> {later.get(timeout=60)}")
    print(f"done in {time.monotonic() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
