"""Finding a server for integration tests: reachable, missing (skip or fail), misconfigured."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from taskq_testing.plugin import require_server, tcp_problem

pytest_plugins = ["pytester"]


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


def test_a_listening_server_has_no_problem(listening_port: int) -> None:
    assert tcp_problem(f"redis://127.0.0.1:{listening_port}/0") is None


def test_the_scheme_port_is_used_when_the_url_has_none(listening_port: int) -> None:
    assert tcp_problem("amqp://guest@127.0.0.1//", default_port=listening_port) is None


def test_a_closed_port_is_named(closed_port: int) -> None:
    problem = tcp_problem(f"redis://127.0.0.1:{closed_port}")
    assert problem is not None
    assert f"nothing accepts connections on 127.0.0.1:{closed_port}" in problem


@pytest.mark.parametrize("url", ["sqlite:///x.db", "redis://127.0.0.1", "memory://"])
def test_a_url_without_host_and_port_is_an_error(url: str) -> None:
    with pytest.raises(ValueError, match="names no host and port"):
        tcp_problem(url)


def test_require_server_prefers_the_environment(
    monkeypatch: pytest.MonkeyPatch, listening_port: int, closed_port: int
) -> None:
    url = f"redis://127.0.0.1:{listening_port}/3"
    monkeypatch.setenv("TASKQ_TEST_REDIS_URL", url)
    assert (
        require_server("Redis", "TASKQ_TEST_REDIS_URL", f"redis://127.0.0.1:{closed_port}") == url
    )


def test_require_server_falls_back_to_the_default(
    monkeypatch: pytest.MonkeyPatch, listening_port: int
) -> None:
    monkeypatch.delenv("TASKQ_TEST_REDIS_URL", raising=False)
    url = f"redis://127.0.0.1:{listening_port}/3"
    assert require_server("Redis", "TASKQ_TEST_REDIS_URL", url) == url


@pytest.mark.parametrize(("ci", "outcome"), [("", "skipped"), ("true", "failed")])
def test_require_server_skips_locally_and_fails_in_ci(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    closed_port: int,
    ci: str,
    outcome: str,
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.delenv("TASKQ_TEST_REDIS_URL", raising=False)
    pytester.makepyfile(
        f"""
        from taskq_testing.plugin import require_server

        def test_needs_redis():
            require_server("Redis", "TASKQ_TEST_REDIS_URL", "redis://127.0.0.1:{closed_port}")
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(
        ["*Redis is not available*set TASKQ_TEST_REDIS_URL to a Redis URL*"]
    )


def test_unique_name_differs_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        names = []

        @pytest.mark.parametrize("run", range(3))
        def test_name(unique_name, run):
            assert unique_name.startswith("taskq-test-")
            names.append(unique_name)

        def test_all_differ():
            assert len(set(names)) == 3
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
