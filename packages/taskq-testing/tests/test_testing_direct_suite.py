"""The transport suite's direct-exchange tests fail a transport that gets ``send_direct`` or
``delete_queue`` wrong, one broken rule at a time (mutants of the real SQLite transport, run in
a child pytest session, as in test_testing_transport_suite.py)."""

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

    @pytest.fixture
    def open_transport(self, tmp_path):
        return opener(tmp_path, Mutant{index})
"""

#: name -> (the broken methods, the suite test that must catch it)
MUTANTS = {
    "send_direct ignores the routing key": (
        "def send_direct(self, exchange, routing_key, envelope):\n"
        "    rows = self._db.query(\n"
        "        'SELECT DISTINCT routing_key FROM taskq_bindings WHERE exchange = ?', (exchange,))\n"
        "    sent = False\n"
        "    for (key,) in rows:\n"
        "        sent = super().send_direct(exchange, key, envelope) or sent\n"
        "    return sent",
        "test_send_direct_matches_the_routing_key_exactly",
    ),
    "send_direct always says delivered": (
        "def send_direct(self, exchange, routing_key, envelope):\n"
        "    super().send_direct(exchange, routing_key, envelope)\n"
        "    return True",
        "test_send_direct_without_a_bound_queue_returns_false",
    ),
    "send_direct reaches one queue only": (
        "def send_direct(self, exchange, routing_key, envelope):\n"
        "    rows = self._db.query(\n"
        "        'SELECT queue FROM taskq_bindings WHERE exchange = ? AND routing_key = ? '\n"
        "        'ORDER BY queue LIMIT 1', (exchange, routing_key))\n"
        "    for (queue,) in rows:\n"
        "        self.publish(queue, envelope)\n"
        "    return bool(rows)",
        "test_send_direct_reaches_every_queue_bound_with_the_key",
    ),
    "delete_queue keeps the binding": (
        "def delete_queue(self, name):\n    self.purge(name)",
        "test_delete_queue_removes_messages_and_bindings",
    ),
    "delete_queue keeps held deliveries": (
        "def delete_queue(self, name):\n"
        "    self.purge(name)\n"
        "    with self._db.write() as conn:\n"
        "        conn.execute('DELETE FROM taskq_bindings WHERE queue = ?', (name,))",
        "test_delete_queue_drops_a_held_delivery",
    ),
    "delete_queue lets a requeued delivery back": (
        "def delete_queue(self, name):\n"
        "    with self._db.write() as conn:\n"
        "        conn.execute('DELETE FROM taskq_messages WHERE queue = ? AND in_flight = 0',\n"
        "                     (name,))\n"
        "        conn.execute('DELETE FROM taskq_bindings WHERE queue = ?', (name,))",
        "test_settling_a_deleted_queues_delivery_is_harmless",
    ),
    "declare_queue forgets the binding": (
        "def declare_queue(self, spec):\n    pass",
        "test_send_direct_reaches_the_bound_queue",
    ),
}


def test_suite_fails_every_broken_direct_exchange(pytester: pytest.Pytester) -> None:
    cases = list(MUTANTS.items())
    source = HEADER + "".join(
        CASE.format(index=index, mutant=textwrap.indent(mutant, "    "))
        for index, (_, (mutant, _)) in enumerate(cases)
    )
    pytester.makepyfile(test_direct_mutants=source)
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
