"""The canvas end to end on SQLite: real ``taskq worker`` processes (threads and prefork) run
every primitive and nesting, failures, retries, revokes and a killed worker's chord.

The tests are :class:`canvas_workflows.CanvasWorkflows`, shared with taskq-redis's
``test_redis_canvas.py``; this module gives them a SQLite file as broker and result store.
Both pools matter: in the prefork pool the chord is completed, and its body sent, by a forked
child; in the threads pool by a thread of the worker itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from canvas_tasks import VISIBILITY_TIMEOUT
from canvas_workflows import CanvasSetup, CanvasWorkflows, open_canvas

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kills process groups; forks")


@pytest.fixture(scope="module", params=["threads", "prefork"])
def canvas(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CanvasSetup]:
    pool: str = request.param
    directory = tmp_path_factory.mktemp(f"canvas-{pool}")
    url = f"sqlite:///{directory / 'canvas.sqlite3'}"
    options = {"visibility_timeout": VISIBILITY_TIMEOUT, "polling_interval": 0.02}
    yield from open_canvas(pool, directory, url, url, "canvas", broker_transport_options=options)


class TestCanvasOnSqlite(CanvasWorkflows):
    pass
