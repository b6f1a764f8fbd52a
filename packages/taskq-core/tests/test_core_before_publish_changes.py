"""What a ``before_task_publish`` receiver changes is sent, as with Celery.

Celery fires the signal with the headers, properties and body it then publishes, so tracing
libraries (OpenTelemetry's Celery instrumentation, for one) inject their context into
``headers`` there. taskq serializes after the signal for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from taskq import TaskQ, group, signals

from .conftest import Take


@pytest.fixture
def injecting() -> Iterator[None]:
    """A receiver that adds a trace header named after the message, a property and a kwarg."""

    def inject(
        headers: dict[str, Any], properties: dict[str, Any], body: list[Any], **_: Any
    ) -> None:
        headers["traceparent"] = f"00-{headers['id']}"
        properties["application_tag"] = "traced"
        body[1]["traced"] = True

    signals.before_task_publish.connect(inject)
    try:
        yield
    finally:
        signals.before_task_publish.disconnect(inject)


def _traced(message: Any, properties: Mapping[str, Any], headers: Mapping[str, Any]) -> bool:
    return (
        headers.get("traceparent") == f"00-{message.id}"
        and properties.get("application_tag") == "traced"
        and message.kwargs.get("traced") is True
    )


@pytest.mark.usefixtures("injecting")
@pytest.mark.parametrize("compression", [None, "zlib"])
def test_a_delay_sends_what_the_receiver_added(
    app: TaskQ, take: Take, compression: str | None
) -> None:
    @app.task(compression=compression)
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(1, 2)
    message, envelope = take(app)
    assert message.id == result.id
    assert _traced(message, envelope.properties, envelope.headers)
    assert (message.args, message.kwargs) == ([1, 2], {"traced": True})


@pytest.mark.usefixtures("injecting")
def test_every_member_of_a_group_sends_its_own_changes(app: TaskQ, take: Take) -> None:
    @app.task
    def echo(value: object = None, traced: bool = False) -> object:
        return value

    shared = [1, 2, 3]
    result = group(echo.s(shared) for _ in range(4)).apply_async()
    seen = [take(app) for _ in range(4)]
    assert [message.id for message, _ in seen] == [r.id for r in result.results]
    for message, envelope in seen:
        assert _traced(message, envelope.properties, envelope.headers)
        assert message.args == [shared]
