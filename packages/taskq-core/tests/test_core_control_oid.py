"""The client's reply-queue identity: one per thread and per process, and its expiry setting."""

from __future__ import annotations

import os
import threading

import pytest

from taskq import TaskQ
from taskq.control import reply_queue
from taskq.exceptions import ImproperlyConfigured


def test_a_forked_child_gets_its_own_oid() -> None:
    app = TaskQ("oid", broker="memory://", set_as_current=False)
    parent_oid = app.thread_oid
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its oid and leave without running pytest's teardown
        os.write(write, app.thread_oid.encode())
        os._exit(0)
    os.close(write)
    child_oid = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child_oid
    assert child_oid != parent_oid
    assert app.thread_oid == parent_oid  # the parent's is unchanged


def test_each_thread_has_its_own_oid() -> None:
    app = TaskQ("oid", broker="memory://", set_as_current=False)
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.append(app.thread_oid))
    thread.start()
    thread.join()
    assert seen[0] != app.thread_oid
    assert app.thread_oid == app.thread_oid


def test_control_queue_expires_sets_the_reply_queue_expiry() -> None:
    app = TaskQ("oid", broker="memory://", set_as_current=False)
    app.conf.control_queue_expires = 2.5
    spec = reply_queue(app.conf.control_exchange, app.thread_oid, app.conf.control_queue_expires)
    assert spec.arguments["x-expires"] == 2500
    assert reply_queue("celery", "x").arguments["x-expires"] == 10_000  # Celery's default


def test_a_bad_control_queue_expires_is_refused_naming_the_setting() -> None:
    app = TaskQ("oid", broker="memory://", set_as_current=False)
    app.conf.control_queue_expires = -1
    with pytest.raises(ImproperlyConfigured, match="control_queue_expires"):
        app.conf.validate()
