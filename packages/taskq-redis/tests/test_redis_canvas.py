"""The canvas end to end on Redis: real ``taskq worker`` processes (threads and prefork) run
every primitive and nesting, failures, retries, revokes and a killed worker's chord, with
Redis as broker and result store (the chord counted by taskq-redis's backend).

The tests are taskq-worker's ``canvas_workflows.CanvasWorkflows``, shared with its SQLite
module ``test_worker_e2e_canvas.py``, with its task module ``canvas_tasks``; this module gives
them the shared Redis. A unique ``global_keyprefix`` keeps the broker's keys apart from other
tests': the short visibility timeout the kill tests need would otherwise restore other tests'
unacknowledged deliveries (the ``unacked`` hash is one per database).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "taskq-worker" / "tests"))

# Found on the path above at run time; pyright looks for them beside this file only.
from canvas_tasks import VISIBILITY_TIMEOUT  # pyright: ignore[reportMissingImports]
from canvas_workflows import (  # pyright: ignore[reportMissingImports]
    CanvasSetup,
    CanvasWorkflows,
    open_canvas,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kills process groups; forks")


@pytest.fixture(scope="module", params=["threads", "prefork"])
def canvas(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CanvasSetup]:
    pool: str = request.param
    directory = tmp_path_factory.mktemp(f"redis-canvas-{pool}")
    prefix = f"taskq-test-canvas-{directory.name}"
    options = {"visibility_timeout": VISIBILITY_TIMEOUT, "global_keyprefix": f"{prefix}:"}
    yield from open_canvas(
        pool, directory, redis_url, redis_url, prefix, broker_transport_options=options
    )


class TestCanvasOnRedis(CanvasWorkflows):
    pass
