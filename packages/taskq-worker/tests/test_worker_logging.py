"""What a worker writes to its log file: Celery's line shapes, task name and id on task lines,
from the worker and from prefork children alike."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from taskq_worker import get_task_logger

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_harness import RunningWorker, memory_app, sqlite_app

LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}: (?P<level>[A-Z]+)/(?P<process>[^\]]+)\] "
)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The worker takes over the root logger (worker_hijack_root_logger); put it back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def _run(app: TaskQ, logfile: Path, pool: str) -> tuple[str, str]:
    logger = get_task_logger("tests.logging")

    @app.task(name="tests.add")
    def add(x: int, y: int) -> int:
        logger.info("adding %s and %s", x, y)
        return x + y

    worker = RunningWorker(app, pool=pool, concurrency=1, logfile=str(logfile)).start()
    try:
        result = add.delay(2, 3)
        assert result.get(timeout=10) == 5
    finally:
        worker.stop()
    return result.id, logfile.read_text()


@pytest.mark.usefixtures("root_logging")
def test_log_file_lines(tmp_path: Path) -> None:
    app = memory_app(worker_hijack_root_logger=True)
    task_id, text = _run(app, tmp_path / "worker.log", "solo")
    lines = text.splitlines()
    assert all(LINE.match(line) for line in lines if not line.startswith(" ")), text
    assert any(line.endswith(f"Task tests.add[{task_id}] received") for line in lines)
    assert any(f"Task tests.add[{task_id}] succeeded in " in line for line in lines)
    assert any(line.endswith(f"tests.add[{task_id}]: adding 2 and 3") for line in lines)
    assert any(line.endswith("ready.") for line in lines)


@pytest.mark.usefixtures("root_logging")
def test_task_lines_from_prefork_children(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path, worker_hijack_root_logger=True)
    task_id, text = _run(app, tmp_path / "worker.log", "prefork")
    [line] = [line for line in text.splitlines() if f"tests.add[{task_id}]: adding" in line]
    assert "/ForkPoolWorker-" in line, "a child names itself in its lines"
    assert f"Task tests.add[{task_id}] succeeded in " in text


@pytest.mark.usefixtures("root_logging")
def test_custom_formats(tmp_path: Path) -> None:
    app = memory_app(
        worker_hijack_root_logger=True,
        worker_log_format="W %(levelname)s %(message)s",
        worker_task_log_format="T %(task_id)s %(message)s",
    )
    task_id, text = _run(app, tmp_path / "worker.log", "solo")
    assert f"W INFO Task tests.add[{task_id}] received" in text
    assert f"T {task_id} adding 2 and 3" in text
