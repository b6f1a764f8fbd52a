"""The backend suite fails a result backend that breaks the contract, one broken rule at a time.

Each mutant is the real memory backend with one public method made wrong; the suite run on it
(in a child pytest session) must fail the test that guards that rule.
"""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

HEADER = """
import dataclasses
import time
import uuid

import pytest
from taskq.backends.memory import MemoryBackend
from taskq_testing.backend import BackendConformance
"""

CASE = """

class Mutant{index}(MemoryBackend):
{mutant}


class TestMutant{index}(BackendConformance):
    latency = 1.0
    short_expires = 0.2

    @pytest.fixture
    def open_backend(self, unique_name):
        return lambda options: Mutant{index}(f"memory://{{unique_name}}", options)
"""

MUTANTS = {
    "success-overwritten": (
        "def store_many(self, metas, *, expires=None):\n"
        "    for m in metas:\n"
        "        self.forget(m.task_id)\n"
        "        super().store_many([m], expires=expires)",
        "test_success_is_never_overwritten",
    ),
    "success-check-not-atomic": (
        "def store_many(self, metas, *, expires=None):\n"
        "    for m in metas:\n"
        "        current = self.get(m.task_id)\n"
        "        time.sleep(0.001)\n"
        "        if current is None or current.status != 'SUCCESS':\n"
        "            self.forget(m.task_id)\n"
        "            super().store_many([m], expires=expires)",
        "test_success_wins_a_race_with_started",
    ),
    "expires-ignored": (
        "def store_many(self, metas, *, expires=None):\n    super().store_many(metas)",
        "test_store_with_expires_is_gone_after_it",
    ),
    "default-expiry-ignored": (
        "def __init__(self, url, options):\n"
        "    super().__init__(url, options)\n"
        "    self.expires = None",
        "test_default_expiry_comes_from_options",
    ),
    "extended-always-stored": (
        "def __init__(self, url, options):\n"
        "    super().__init__(url, dataclasses.replace(options, extended=True))",
        "test_extended_fields_need_result_extended",
    ),
    "store-many-keeps-the-first": (
        "def store_many(self, metas, *, expires=None):\n"
        "    super().store_many(list(metas)[:1], expires=expires)",
        "test_store_many_round_trip",
    ),
    "forget-does-nothing": ("def forget(self, task_id): pass", "test_forget"),
    "wait-never-waits": (
        "def wait(self, task_ids, timeout):\n    return super().wait(task_ids, 0)",
        "test_wait_returns_when_ready",
    ),
    "wait-returns-unready": (
        "def wait(self, task_ids, timeout):\n"
        "    super().wait(task_ids, timeout)\n"
        "    return {i: m for i in task_ids if (m := self.get(i)) is not None}",
        "test_wait_times_out_with_the_ready_ones",
    ),
    "delete-group-does-nothing": ("def delete_group(self, group_id): pass", "test_delete_group"),
    "chord-in-report-order": (
        "def chord_part_done(self, part, **kw):\n"
        "    self.seen = [*getattr(self, 'seen', []), part.meta]\n"
        "    return None if super().chord_part_done(part, **kw) is None else self.seen",
        "test_chord_completes_once_in_group_index_order",
    ),
    "duplicate-part-counted-again": (
        "def chord_part_done(self, part, **kw):\n"
        "    unique = dataclasses.replace(part, task_id=str(uuid.uuid4()))\n"
        "    return super().chord_part_done(unique, **kw)",
        "test_duplicate_part_is_counted_once",
    ),
    "chord-completes-for-every-late-part": (
        "def chord_part_done(self, part, **kw):\n"
        "    done = super().chord_part_done(part, **kw)\n"
        "    if done is not None:\n"
        "        self.done = done\n"
        "    return done if done is not None else getattr(self, 'done', None)",
        "test_a_claimed_chord_is_not_handed_to_another_part",
    ),
    "claim-never-expires": (
        "def chord_part_done(self, part, **kw):\n"
        "    return super().chord_part_done(part, lease=3600)",
        "test_an_expired_claim_lets_a_late_report_complete_the_chord",
    ),
    "claimant-not-recognised": (
        "def chord_part_done(self, part, **kw):\n"
        "    claimed = getattr(self, 'claimed', set())\n"
        "    if part.task_id in claimed:\n"
        "        return None\n"
        "    done = super().chord_part_done(part, **kw)\n"
        "    if done is not None:\n"
        "        self.claimed = claimed | {part.task_id}\n"
        "    return done",
        "test_the_claimant_gets_the_parts_again_until_the_body_is_sent",
    ),
    "body-sent-ignored": (
        "def chord_body_sent(self, group_id): pass",
        "test_a_done_chord_hands_out_nothing_even_after_the_lease",
    ),
    "chord-expires-with-results": (
        "def _chord(self, group_id, now):\n"
        "    chord = super()._chord(group_id, now)\n"
        "    chord.expires_at = None if self.expires is None else now + self.expires\n"
        "    return chord",
        "test_a_chord_outlives_a_short_result_expires",
    ),
}


def test_suite_fails_every_broken_backend(pytester: pytest.Pytester) -> None:
    cases = list(MUTANTS.items())
    pytester.makepyfile(
        test_mutants=HEADER
        + "".join(
            CASE.format(index=i, mutant=textwrap.indent(mutant, "    "))
            for i, (_, (mutant, _)) in enumerate(cases)
        )
    )
    selected = " or ".join(f"(TestMutant{i} and {test})" for i, (_, (_, test)) in enumerate(cases))
    reports = pytester.inline_run("-p", "no:cacheprovider", "-k", selected)
    failed = {
        r.nodeid.split("::")[1]
        for r in reports.getreports("pytest_runtest_logreport")
        if r.when == "call" and r.failed
    }
    survived = [name for i, (name, _) in enumerate(cases) if f"TestMutant{i}" not in failed]
    assert survived == [], f"the suite passed these broken backends: {survived}"
