"""Where the SQS tests find SQS: moto's server, an *emulator* of the SQS API.

``moto_url``: a ``moto_server`` this session starts on a free port (``SQS_MOTO_URL`` points
the tests at one already running instead). Without the binary the tests skip with the
reason, or fail under ``CI=true``. Every test that talks to it carries the ``emulator``
marker (``moto``): what it proves is SQS's API as moto implements it, not AWS itself (IAM,
STS, real timing, eventual consistency); see the README.

Tests isolate themselves with unique queue names; ``moto_reset`` wipes the server for the
tests that count queues or purge (moto allows one purge a minute per queue, as SQS does).
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq_testing.plugin import server_missing
from taskq_testing.servers import ServerProcess, binary_or_none, free_port

#: Any keys do for moto; fixed so boto3 never looks for real credentials.
KEY, SECRET = "testing", "testing"
REGION = "us-east-1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator(name): runs against an emulator of the service, not the service"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents and "moto_url" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.emulator("moto"))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("SQS_MOTO_URL")
    if configured:
        if not _answers(configured):
            server_missing("moto", f"SQS_MOTO_URL={configured} does not answer")
        yield configured.rstrip("/")
        return
    binary = binary_or_none("moto_server", str(Path(sys.executable).parent))
    if binary is None:
        server_missing("moto", "moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workdir = tmp_path_factory.mktemp("moto")
    process = ServerProcess(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        lambda: _answers(url),
        log_path=workdir / "moto.log",
        start_timeout=30.0,
    )
    with process:
        yield url


@pytest.fixture
def moto_reset(moto_url: str) -> str:
    """Wipe moto's state first (queues, tags, purge timers); returns the URL."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    return moto_url


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real AWS configuration leaks in: fixed fake keys and region."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def sqs_url(moto_reset: str) -> str:
    """``sqs://KEY:SECRET@host:port``, as a Celery user writes it for a local endpoint."""
    return moto_reset.replace("http://", f"sqs://{KEY}:{SECRET}@")


#: The options every test transport takes: kombu's, for an endpoint without TLS.
SQS_OPTIONS: dict[str, Any] = {"region": REGION, "is_secure": False}


@pytest.fixture
def sqs_options() -> dict[str, Any]:
    return dict(SQS_OPTIONS)


@pytest.fixture
def sqs_client(moto_reset: str) -> Any:
    """A plain boto3 client on the same server, to look at what the transport did."""
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=moto_reset,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )
