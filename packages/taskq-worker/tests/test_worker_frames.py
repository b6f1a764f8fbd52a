"""Reading a child's messages in bulk: frames as multiprocessing writes them, split anyhow."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from multiprocessing import Pipe

import pytest

from taskq_worker.pools.frames import Inbox, readable


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        with contextlib.suppress(OSError):  # a test closed it already
            os.close(fd)


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big", signed=True) + payload


def test_several_messages_come_from_one_read() -> None:
    parent, child = Pipe()
    try:
        for message in (b"one", b"", b"three" * 1000):
            child.send_bytes(message)
        inbox = Inbox(parent.fileno())
        assert readable(parent.fileno())
        assert inbox.read() == [b"one", b"", b"three" * 1000]
        assert not readable(parent.fileno())
    finally:
        parent.close()
        child.close()


def test_a_message_split_across_reads_waits_for_its_end(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    inbox = Inbox(read_fd)
    data = _frame(b"first") + _frame(b"second")
    os.write(write_fd, data[:2])
    assert inbox.read() == []  # not even a whole length
    os.write(write_fd, data[2:12])
    assert inbox.read() == [b"first"]
    os.write(write_fd, data[12:])
    assert inbox.read() == [b"second"]


def test_the_long_length_form_is_read(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    payload = b"x" * 10
    os.write(write_fd, (-1).to_bytes(4, "big", signed=True) + (10).to_bytes(8, "big") + payload)
    assert Inbox(read_fd).read() == [payload]


def test_end_of_file_is_none(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    os.close(write_fd)
    assert readable(read_fd)
    assert Inbox(read_fd).read() is None
