"""The transport suite fails a transport that breaks the contract, one broken rule at a time.

Each mutant is the real SQLite transport with one public method made wrong; the suite run on it
(in a child pytest session) must fail the test that guards that rule. This is what keeps the
suite's tests from passing whatever the transport does.
"""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

HEADER = """
import pytest
from taskq.transports.sqlite import SQLiteTransport
from taskq_testing.transport import TransportConformance


def opener(tmp_path, cls):
    url = f"sqlite:///{tmp_path / 'broker.sqlite3'}"

    def open_transport(*, visibility_timeout=None):
        options = {} if visibility_timeout is None else {"visibility_timeout": visibility_timeout}
        return cls(url, options)

    return open_transport
"""

CASE = """

class Mutant{index}(SQLiteTransport):
{mutant}


class TestMutant{index}(TransportConformance):
    latency = 1.0
{attributes}
    @pytest.fixture
    def open_transport(self, tmp_path):
        return opener(tmp_path, Mutant{index})
"""

MUTANTS = {
    "ack-does-nothing": (
        "def ack(self, deliveries): pass",
        "test_ack_removes_for_good",
    ),
    "fetch-reverses-each-batch": (
        "def fetch(self, queues, limit, timeout):\n"
        "    return super().fetch(queues, limit, timeout)[::-1]",
        "test_fifo_within_a_queue",
    ),
    "deliveries-never-counted": (
        "def fetch(self, queues, limit, timeout):\n"
        "    got = super().fetch(queues, limit, timeout)\n"
        "    for d in got: d.deliveries = 1\n"
        "    return got",
        "test_reject_with_requeue_delivers_again",
    ),
    "eta-ignored": (
        "def publish(self, queue, envelope, *, eta=None):\n    super().publish(queue, envelope)",
        "test_delayed_message_waits_for_its_eta",
    ),
    "fetch-leaves-a-copy": (
        "def fetch(self, queues, limit, timeout):\n"
        "    got = super().fetch(queues, limit, timeout)\n"
        "    for d in got: self.publish(d.queue, d.envelope)\n"
        "    return got",
        "test_concurrent_consumers_claim_each_message_once",
    ),
    "fetch-never-waits": (
        "def fetch(self, queues, limit, timeout):\n    return super().fetch(queues, limit, 0)",
        "test_fetch_returns_empty_after_timeout",
    ),
    "extend-does-nothing": (
        "def extend(self, deliveries, seconds): pass",
        "test_extend_keeps_a_delivery_invisible",
    ),
    "dead-letter-drops": (
        "def dead_letter(self, delivery, reason):\n    self.reject(delivery, requeue=False)",
        "test_dead_letter_moves_the_message_with_its_reason",
    ),
    "purge-counts-nothing": (
        "def purge(self, queue):\n    super().purge(queue)\n    return 0",
        "test_purge_deletes_waiting_messages",
    ),
    "publish-edits-the-envelope": (
        "def publish(self, queue, envelope, *, eta=None):\n"
        "    envelope.headers['x-seen'] = True\n"
        "    super().publish(queue, envelope, eta=eta)",
        "test_publish_does_not_change_the_envelope",
    ),
    "unsubscribe-does-nothing": (
        "def subscribe(self, exchange, callback):\n"
        "    super().subscribe(exchange, callback)\n"
        "    return lambda: None",
        "test_unsubscribe_stops_delivery",
    ),
    # The direct exchange (remote-control replies): send_direct and delete_queue.
    "send-direct-ignores-the-routing-key": (
        "def send_direct(self, exchange, routing_key, envelope):\n"
        "    rows = self._db.query(\n"
        "        'SELECT DISTINCT routing_key FROM taskq_bindings WHERE exchange = ?', (exchange,))\n"
        "    sent = False\n"
        "    for (key,) in rows:\n"
        "        sent = super().send_direct(exchange, key, envelope) or sent\n"
        "    return sent",
        "test_send_direct_matches_the_routing_key_exactly",
    ),
    "send-direct-always-says-delivered": (
        "def send_direct(self, exchange, routing_key, envelope):\n"
        "    super().send_direct(exchange, routing_key, envelope)\n"
        "    return True",
        "test_send_direct_without_a_bound_queue_returns_false",
    ),
    "send-direct-reaches-one-queue-only": (
        "def send_direct(self, exchange, routing_key, envelope):\n"
        "    rows = self._db.query(\n"
        "        'SELECT queue FROM taskq_bindings WHERE exchange = ? AND routing_key = ? '\n"
        "        'ORDER BY queue LIMIT 1', (exchange, routing_key))\n"
        "    for (queue,) in rows:\n"
        "        self.publish(queue, envelope)\n"
        "    return bool(rows)",
        "test_send_direct_reaches_every_queue_bound_with_the_key",
    ),
    "delete-queue-keeps-the-binding": (
        "def delete_queue(self, name):\n    self.purge(name)",
        "test_delete_queue_removes_messages_and_bindings",
    ),
    "delete-queue-keeps-held-deliveries": (
        "def delete_queue(self, name):\n"
        "    self.purge(name)\n"
        "    with self._db.write() as conn:\n"
        "        conn.execute('DELETE FROM taskq_bindings WHERE queue = ?', (name,))",
        "test_delete_queue_drops_a_held_delivery",
    ),
    "delete-queue-lets-a-requeued-delivery-back": (
        "def delete_queue(self, name):\n"
        "    with self._db.write() as conn:\n"
        "        conn.execute('DELETE FROM taskq_messages WHERE queue = ? AND in_flight = 0',\n"
        "                     (name,))\n"
        "        conn.execute('DELETE FROM taskq_bindings WHERE queue = ?', (name,))",
        "test_settling_a_deleted_queues_delivery_is_harmless",
    ),
    "declare-queue-forgets-the-binding": (
        "def declare_queue(self, spec):\n    pass",
        "test_send_direct_reaches_the_bound_queue",
    ),
}


def write_suite(pytester: pytest.Pytester, cases: list[tuple[str, str]]) -> None:
    """One test module: a ``TestMutant<i>`` per ``(mutant methods, class attributes)``."""
    source = HEADER + "".join(
        CASE.format(
            index=index,
            mutant=textwrap.indent(mutant, "    "),
            attributes=textwrap.indent(attributes, "    "),
        )
        for index, (mutant, attributes) in enumerate(cases)
    )
    pytester.makepyfile(test_mutants=source)


def test_suite_fails_every_broken_transport(pytester: pytest.Pytester) -> None:
    cases = list(MUTANTS.items())
    write_suite(pytester, [(mutant, "") for _, (mutant, _) in cases])
    selected = " or ".join(f"(TestMutant{i} and {test})" for i, (_, (_, test)) in enumerate(cases))
    reports = pytester.inline_run("-p", "no:cacheprovider", "-k", selected)
    outcomes = {
        r.nodeid.split("::")[1]: r.outcome
        for r in reports.getreports("pytest_runtest_logreport")
        if r.when == "call"
    }
    survived = [
        name for i, (name, _) in enumerate(cases) if outcomes.get(f"TestMutant{i}") != "failed"
    ]
    assert len(outcomes) == len(cases)
    assert survived == [], f"the suite passed these broken transports: {survived}"


def test_wrong_priority_order_fails(pytester: pytest.Pytester) -> None:
    # SQLite serves 9 before 0; a suite told the opposite must notice.
    write_suite(pytester, [("pass", "priority_order = 'lower_first'")])
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "test_priority_order")
    result.assert_outcomes(failed=1)


def test_failures_show_the_compared_values(pytester: pytest.Pytester) -> None:
    """The suite's asserts are rewritten like a test module's, so a failure says what it got."""
    mutant, test = MUTANTS["purge-counts-nothing"]
    write_suite(pytester, [(mutant, "")])
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", test)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 0 == 4*"])


def test_missing_capability_skips_with_the_reason(pytester: pytest.Pytester) -> None:
    attributes = "supports_broadcast = False\nfifo = False\npriority_order = None"
    write_suite(pytester, [("pass", attributes)])
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-rs", "-k", "broadcast or unsubscribe or fifo or priority"
    )
    result.assert_outcomes(skipped=6)
    result.stdout.fnmatch_lines(["*TestMutant0.supports_broadcast is False*"])
